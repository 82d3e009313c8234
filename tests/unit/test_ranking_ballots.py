"""Probability ballots: what they carry, and every way they can be malformed, read by gateway and ledger."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from consensus.entry import BadEntry, _votes
from core.identity import Identity
from core.statements import sign
from node.config import ConfigError, NodeConfig
from node.rounds import _read_ballot
from ranking import ballots
from ranking.bradley_terry import Vote

ROUND = "r1"
TASK = {"pairs": [[0, 1], [1, 0]], "check": [0, 1]}


def probability_body() -> dict[str, Any]:
    return {
        "round": ROUND,
        "reading": "probability",
        "votes": [[0, 1, "A"], [1, 0, "B"]],
        "verdicts": {"0": "GOOD", "1": "BAD"},
        "probabilities": [0.8, 0.3],
        "good": {"0": 0.9, "1": 0.2},
        "likelihoods": {"0": -0.5, "1": -1.0},
    }


@pytest.fixture
def judge(tmp_path: Path) -> Identity:
    return Identity.load_or_create(tmp_path / "judge")


def test_a_probability_ballot_gives_soft_votes_and_likelihood_votes(judge: Identity) -> None:
    votes, verdicts = _read_ballot(sign(judge, "ballot", probability_body()), TASK, ROUND)
    j = judge.peer_id
    likely = 1 / (1 + math.exp(-ballots.LIKELIHOOD_SCALE * 0.5))  # 0's likelihood is 0.5 a character higher
    assert [(v.judge, v.first, v.second) for v in votes] == [(j, 0, 1), (j, 1, 0)] * 2
    assert [v.share for v in votes] == pytest.approx([0.8, 0.3, likely, 1 - likely])
    assert verdicts == {0: "GOOD", 1: "BAD"}
    # the ledger reads the same ballot to the same votes (it names candidates by their place)
    assert _votes(j, probability_body(), ("alice", "bob")) == votes


def test_a_text_ballot_reads_as_before(judge: Identity) -> None:
    body = {"round": ROUND, "votes": [[0, 1, "A"], [1, 0, None]], "verdicts": {"0": "GOOD"}}
    votes, _ = _read_ballot(sign(judge, "ballot", body), TASK, ROUND)
    assert votes == [Vote(judge.peer_id, 0, 1, "first")]
    assert ballots.read(body, ["A", None], {0: "GOOD"}, [(0, 1), (1, 0)]) == ballots.Probabilities()


def test_an_empty_answer_has_no_likelihood_and_no_likelihood_vote(judge: Identity) -> None:
    body = probability_body()
    body["likelihoods"]["1"] = None
    votes, _ = _read_ballot(sign(judge, "ballot", body), TASK, ROUND)
    assert len(votes) == 2


def changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    body = copy.deepcopy(probability_body())
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


MALFORMED = [
    (changed(("probabilities", 0), 1.5), "probability"),
    (changed(("probabilities", 0), -0.1), "probability"),
    (changed(("probabilities", 0), math.nan), "probability"),
    (changed(("probabilities", 0), math.inf), "probability"),
    (changed(("probabilities", 0), None), "probability"),  # missing for a pair it was given
    (changed(("probabilities", 0), True), "probability"),
    (changed(("probabilities", 0), "0.8"), "probability"),
    (changed(("probabilities",), [0.8]), "one probability per vote"),
    (changed(("probabilities",), KeyError), "one probability per vote"),
    (changed(("probabilities", 0), 0.2), "a vote 'A' with a probability"),  # signed A, says B
    (changed(("votes", 0, 2), None), "a vote None"),
    (changed(("good", "0"), 2.0), "probability"),
    (changed(("good", "1"), KeyError), "P\\(GOOD\\) for each verdict"),
    (changed(("good", "0"), 0.1), "a verdict 'GOOD'"),
    (changed(("likelihoods", "0"), 0.5), "at most 0"),
    (changed(("likelihoods", "0"), -math.inf), "at most 0"),
    (changed(("likelihoods", "1"), KeyError), "a likelihood for each candidate"),
    (changed(("likelihoods", "x"), -1.0), "map by candidate"),
    (changed(("reading",), "vibes"), "reading"),
]


@pytest.mark.parametrize(("body", "why"), MALFORMED)
def test_a_ballot_with_malformed_probabilities_is_refused_by_the_gateway(
    judge: Identity, body: dict[str, Any], why: str
) -> None:
    try:
        ballot = sign(judge, "ballot", body)
    except ValueError:  # NaN and infinities are not JSON: no peer can sign them, but a reader still refuses
        pairs = [tuple(v[:2]) for v in body["votes"]]
        with pytest.raises(ValueError, match=why):
            ballots.read(
                body, [v[2] for v in body["votes"]], {int(k): v for k, v in body["verdicts"].items()}, pairs
            )
        return
    with pytest.raises(ValueError, match=why):
        _read_ballot(ballot, TASK, ROUND)


@pytest.mark.parametrize(("body", "why"), MALFORMED)
def test_a_ballot_with_malformed_probabilities_is_refused_by_the_ledger(
    body: dict[str, Any], why: str
) -> None:
    with pytest.raises(BadEntry):
        _votes("judge", body, ("alice", "bob"))


def test_a_text_ballot_may_not_smuggle_probabilities(judge: Identity) -> None:
    body = {"round": ROUND, "votes": [[0, 1, "A"], [1, 0, "B"]], "verdicts": {}, "probabilities": [1.0, 0.0]}
    with pytest.raises(ValueError, match="text ballot"):
        _read_ballot(sign(judge, "ballot", body), TASK, ROUND)


def test_a_node_judges_by_text_or_probability_only() -> None:
    assert NodeConfig().judge_reading == "text"
    assert NodeConfig(judge_reading="probability").judge_reading == "probability"
    with pytest.raises(ConfigError, match="judge_reading"):
        NodeConfig(judge_reading="vibes")  # type: ignore[arg-type]
