"""The pieces of a round that need no network: signed statements, the commitment check, reading ballots."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.identity import Identity
from core.statements import BadStatement, commitment_digest, from_wire, sign
from node.rounds import (
    Answerer,
    Candidate,
    RoundResult,
    RoundService,
    _checked_reveal,
    _read_ballot,
)
from ranking.bradley_terry import Vote
from routing.grading import spoken_answer

ROUND = "r1"


@pytest.fixture
def peer(tmp_path: Path) -> Identity:
    return Identity.load_or_create(tmp_path / "peer")


@pytest.fixture
def other(tmp_path: Path) -> Identity:
    return Identity.load_or_create(tmp_path / "other")


def test_a_statement_verifies_and_any_change_breaks_it(peer: Identity, other: Identity) -> None:
    statement = sign(peer, "ballot", {"round": ROUND, "votes": [[0, 1, "A"]]})
    assert from_wire(statement.to_wire(), kind="ballot", signer=peer.peer_id) == statement
    tampered = {**statement.to_wire(), "body": {"round": ROUND, "votes": [[0, 1, "B"]]}}
    with pytest.raises(BadStatement, match="does not verify"):
        from_wire(tampered, kind="ballot")
    with pytest.raises(BadStatement, match="expected"):
        from_wire(statement.to_wire(), kind="ballot", signer=other.peer_id)  # someone else's name on it
    with pytest.raises(BadStatement, match="expected a reveal"):
        from_wire(statement.to_wire(), kind="reveal")
    with pytest.raises(BadStatement, match="malformed"):
        from_wire({"kind": "ballot"}, kind="ballot")


def _commit_and_reveal(identity: Identity, committed: str, revealed: str) -> tuple:
    salt = "5a1t"
    commitment = sign(
        identity,
        "commitment",
        {"round": ROUND, "model": "m", "digest": commitment_digest(ROUND, "m", salt, committed)},
    )
    reveal = sign(identity, "reveal", {"round": ROUND, "model": "m", "answer": revealed, "salt": salt})
    return commitment, reveal


def test_the_revealed_answer_must_be_the_committed_one(peer: Identity) -> None:
    answerer = Answerer("m", peer.peer_id)
    assert _checked_reveal(ROUND, answerer, *_commit_and_reveal(peer, "Paris", "Paris")) == "Paris"
    with pytest.raises(ValueError, match=r"^commitment mismatch"):
        _checked_reveal(ROUND, answerer, *_commit_and_reveal(peer, "Lyon", "Paris"))
    with pytest.raises(
        ValueError, match="another round"
    ):  # a commitment can't be replayed into another round
        _checked_reveal("r2", answerer, *_commit_and_reveal(peer, "Paris", "Paris"))


def test_a_ballot_is_read_against_what_the_judge_was_asked(peer: Identity) -> None:
    task = {"pairs": [[0, 1], [1, 0]], "check": [0, 1]}
    ballot = sign(
        peer,
        "ballot",
        {"round": ROUND, "votes": [[0, 1, "A"], [1, 0, None]], "verdicts": {"0": "GOOD", "1": "BAD"}},
    )
    votes, verdicts = _read_ballot(ballot, task, ROUND)
    assert votes == [Vote(peer.peer_id, 0, 1, "first")]  # an unreadable reply is no vote, not a U
    assert verdicts == {0: "GOOD", 1: "BAD"}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"round": "other", "votes": [], "verdicts": {}}, "another round"),
        ({"round": ROUND, "votes": [[0, 1, "A"]], "verdicts": {}}, "2 pairs were asked"),
        ({"round": ROUND, "votes": [[0, 1, "A"], [0, 2, "A"]], "verdicts": {}}, "not asked"),
        ({"round": ROUND, "votes": [[0, 1, "A"], [1, 0, "maybe"]], "verdicts": {}}, "A, B or U"),
        ({"round": ROUND, "votes": [[0, 1, "A"], [1, 0, "B"]], "verdicts": {"7": "GOOD"}}, "not asked"),
        ({"round": ROUND, "votes": [[0, 1, "A"], [1, 0, "B"]], "verdicts": {"0": "great"}}, "GOOD or BAD"),
    ],
)
def test_a_malformed_ballot_is_refused(peer: Identity, body: dict, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        _read_ballot(sign(peer, "ballot", body), {"pairs": [[0, 1], [1, 0]], "check": [0, 1]}, ROUND)


def test_spoken_answers_compare_equal_when_they_say_the_same() -> None:
    mc = "Which is a vitamin?\nA. Iron\nB. Vitamin C\nC. Zinc\nD. Salt"
    assert spoken_answer(mc, "B") == spoken_answer(mc, "The answer is B.") == "B"
    assert spoken_answer("What is the capital of France?", "Paris.\nIt is big.") == "paris"
    assert spoken_answer("What is the capital of France?", "  \n") is None


def _round(peer: Identity, texts: list[str], votes: list[tuple[int, int, str]], good: dict) -> RoundResult:
    result = RoundResult(round_id=ROUND, mode="consensus", question="Which?\nA. x\nB. y\nC. z\nD. w")
    statement = sign(peer, "reveal", {})
    result.candidates = [Candidate(i, f"m{i}", f"p{i}", t, statement, statement) for i, t in enumerate(texts)]
    result.votes = [Vote("judge", a, b, outcome) for a, b, outcome in votes]  # type: ignore[arg-type]
    result.judges = {"judge": 1.0}
    result.good = good
    return result


def test_agreeing_answers_pool_their_strength_and_checks_need_evidence(peer: Identity) -> None:
    service = RoundService(peer, None, {}, list)
    # c0 beat c1 once: strengths 4/9, 2/9, 3/9. But c1 and c2 both answer B, and together outweigh it.
    beaten = [(0, 1, "first")]
    pooled = _round(peer, ["A", "B", "The answer is B"], beaten, {})
    service._aggregate(pooled, pooled.candidates)
    assert pooled.ranking is not None and pooled.ranking.winner == 0
    assert pooled.winner == 2  # the stronger of the two that agree
    # With all three answers different, the plain Bradley-Terry winner wins.
    apart = _round(peer, ["A", "B", "C"], beaten, {})
    service._aggregate(apart, apart.candidates)
    assert apart.winner == 0
    # A candidate found BAD loses to one found GOOD; one nobody could check is not preferred for that.
    checked = _round(peer, ["A", "B", "C"], beaten, {0: (0, 2), 1: (1, 1)})
    service._aggregate(checked, checked.candidates)
    assert checked.winner == 1
    # No votes at all: the best routed answer, flagged.
    silent = _round(peer, ["A", "B"], [], {})
    service._aggregate(silent, [silent.candidates[1], silent.candidates[0]])
    assert silent.winner == 1 and silent.degraded == "no judge voted: the best routed answer"
