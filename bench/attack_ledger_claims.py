"""Attacks by writers with a say on what their own ledger entries claim: what a gateway gains by writing
rounds' outcomes as it likes, and a challenger by writing its own questions.

    python -m bench.attack_ledger_claims

Run on the ledger's rules alone, with no network: a ledger where every peer earned its say by passing
challenges on the bank's questions, then attackers that have a say write entries, and the ledger (what
every node runs on every entry it receives) takes or refuses them:

- gateway: rounds that never happened, 60 charging an honest peer with 3 malformed messages and 2 missed
  deadlines each (faults nobody can disprove), then 100 with the peer's real commitment (a gateway gets
  one by asking, as for any round) beside a friend's, and a colluding judge voting the peer down and
  checking it BAD. Measured: what the honest peer keeps of its score, and whether it keeps its say.
- challenger: a friend with nothing passed on a question of the challenger's own ("Say X.", and X is
  right), then another friend on the same question written under the ids of two real bank questions.
  Measured: the friends' scores and say.

`rows()` runs both and says what each attacker gained; `gained_before` is the same code run against the
commit before the fixes, `PYTHONPATH` pointing at a worktree of it.
"""

from __future__ import annotations

import itertools
import json
import uuid
from typing import Any

from consensus import BadEntry, Ledger
from core.identity import Identity
from core.statements import Statement, commitment_digest, sign
from node.ledger import round_record
from node.rounds import Candidate, Miss, RoundResult
from ranking.bradley_terry import Vote, fit
from reputation import Rules
from routing.datasets import Item, load, split

FORGED_ROUNDS = 60
RIGGED_ROUNDS = 100
BEFORE = "b0ea0a6"
# Measured by running gateway() and challenger() on the commit before the fixes.
GATEWAY_BEFORE = (
    f"on {BEFORE}: forged faults took the honest peer from 12.00 to 0.98 (8% kept, its say lost); rounds "
    "invented with a colluding judge from 12.00 to 0.99 (8% kept, its say lost)"
)
CHALLENGER_BEFORE = (
    f"on {BEFORE}: both entries taken; the friend on the challenger's own question went from 0 to 4.00 "
    "(a say), the one under bank ids went from 0 to 4.00 (a say)"
)
# The open network's bank: the free answers of the civics calibration part.
BANK = [item for item in split(load("civics"))[0] if item.kind == "qa"]


def signed_answer(peer: Identity, round_id: str, text: str, gateway: Identity) -> tuple[Statement, Statement]:
    """The peer's commitment to `text` and its reveal, as it signs them in any round `gateway` asks."""
    digest = commitment_digest(round_id, "m", "salt", text)
    asked = {"round": round_id, "model": "m", "gateway": gateway.peer_id}
    commitment = sign(peer, "commitment", {**asked, "digest": digest})
    reveal = sign(peer, "reveal", {**asked, "answer": text, "salt": "salt"})
    return commitment, reveal


def challenge(
    peer: Identity, questions: list[tuple[Item, str]], by: Identity, correct: bool = True
) -> dict[str, Any]:
    """A challenge of `peer` by `by`, each question answered as given and written up as `correct`. The
    question and its accepted answers travel with it too: whatever a ledger takes them for, it is given
    them."""
    answers = []
    for item, text in questions:
        commitment, reveal = signed_answer(peer, uuid.uuid4().hex, text, by)
        answers.append(
            {
                "item": f"{item.dataset}/{item.id}",
                "kind": item.kind,
                "question": item.question,
                "accepted": list(item.answers),
                "chance": 0.0,
                "correct": correct,
                "commitment": commitment.to_wire(),
                "reveal": reveal.to_wire(),
            }
        )
    return {"challenge": uuid.uuid4().hex, "peer": peer.peer_id, "model": "m", "answers": answers}


def passed(peer: Identity, by: Identity) -> dict[str, Any]:
    """A challenge by `by` answered right in full, on as many real bank questions as earn a say at once."""
    return challenge(peer, [(item, item.answers[0]) for item in BANK[: int(Rules().say_min_items)]], by)


def network(*peers: Identity, ledger: Ledger | None = None) -> Ledger:
    """A ledger out of its bootstrap where every one of `peers` passed three challenges of an honest node:
    each has a say, and the prior's score (10). Its clock ticks a millisecond an entry, so entries keep
    the order they are written in while decay and the writers' allowances hardly move; or `ledger`,
    empty, on its own clock."""
    if ledger is None:
        ticks = itertools.count(1.7e9, 0.001)
        ledger = Ledger(clock=lambda: next(ticks))
    node, other = Identity.generate(), Identity.generate()
    ledger.append(node, "challenge", passed(other, node))  # the first counts from anyone
    ledger.append(other, "challenge", passed(node, other))
    for peer in [*peers, *peers, *peers]:
        ledger.append(node, "challenge", passed(peer, node))
    return ledger


def rigged_round(victim: Identity, friend: Identity, judge: Identity, gateway: Identity) -> RoundResult:
    """A round `gateway` invented: the victim's real commitment (asked for, it commits like anyone) beside
    a friend's, and a colluding judge voting the friend up and the victim down, and checking it BAD."""
    rid = uuid.uuid4().hex
    candidates = []
    for cid, (peer, text) in enumerate([(victim, "an answer"), (friend, "another")]):
        commitment, reveal = signed_answer(peer, rid, text, gateway)
        candidates.append(Candidate(cid, "m", peer.peer_id, text, commitment, reveal))
    pairs = [[0, 1, "B"], [1, 0, "A"]]
    verdicts = {"0": "BAD", "1": "GOOD"}
    ballot = sign(
        judge, "ballot", {"round": rid, "gateway": gateway.peer_id, "votes": pairs, "verdicts": verdicts}
    )
    result = RoundResult(rid, "consensus", "a question nobody asked", candidates=candidates)
    result.ballots = [ballot]
    result.votes = [Vote.from_preference(judge.peer_id, a, b, p) for a, b, p in pairs]
    result.ranking, result.good, result.winner = fit(2, result.votes), {0: (0, 1), 1: (1, 1)}, 1
    result.chosen = {victim.peer_id: {"answer"}, friend.peer_id: {"answer"}, judge.peer_id: {"judge"}}
    return result


def forged_round(victim: Identity) -> RoundResult:
    """A round that never happened, charging the victim with every fault a gateway can report and nobody
    can disprove."""
    forged = RoundResult(uuid.uuid4().hex, "consensus", "a round that never happened")
    forged.chosen = {victim.peer_id: {"answer", "judge"}}
    forged.misses = [Miss(victim.peer_id, "reveal", "malformed: a forged reveal")] * 3
    forged.misses += [Miss(victim.peer_id, "commit", "missed the deadline")] * 2
    return forged


def _kept(ledger: Ledger, victim: Identity, writes: list[dict[str, Any]], attacker: Identity) -> str:
    before = ledger.book.score(victim.peer_id)
    for record in writes:
        ledger.append(attacker, "round", record)
    after = ledger.book.score(victim.peer_id)
    say = "its say kept" if ledger.book.eligible(victim.peer_id, "answer", ledger.rules) else "its say lost"
    return f"from {before:.2f} to {after:.2f} ({after / before:.0%} kept, {say})"


def gateway() -> str:
    victim, attacker, friend, judge = (Identity.generate() for _ in range(4))
    ledger = network(victim, attacker, judge, friend)
    forged = _kept(
        ledger, victim, [round_record(forged_round(victim)) for _ in range(FORGED_ROUNDS)], attacker
    )
    ledger = network(victim, attacker, judge, friend)
    rigged = [round_record(rigged_round(victim, friend, judge, attacker)) for _ in range(RIGGED_ROUNDS)]
    invented = _kept(ledger, victim, rigged, attacker)
    return f"forged faults took the honest peer {forged}; rounds invented with a colluding judge {invented}"


def challenger() -> str:
    attacker, own, renamed = (Identity.generate() for _ in range(3))
    ledger = network(attacker)
    say_x = Item("friend", "say-x", "qa", "Say X.", (), ("X",))
    written = [
        ("the friend on the challenger's own question", own, [(say_x, "X"), (say_x, "X")]),
        (
            "the one under bank ids",
            renamed,
            [(Item(i.dataset, i.id, "qa", "Say X.", (), ("X",)), "X") for i in BANK[:2]],
        ),
    ]
    taken, said = 0, []
    for what, friend, questions in written:
        try:
            ledger.append(attacker, "challenge", challenge(friend, questions, attacker))
            taken += 1
        except BadEntry:
            pass
        score = ledger.book.score(friend.peer_id)
        say = "a say" if ledger.book.eligible(friend.peer_id, "answer", ledger.rules) else "no say"
        said.append(f"{what} went from 0 to {score:.2f} ({say})")
    verdict = {0: "both entries refused", 1: "one entry taken", 2: "both entries taken"}[taken]
    return f"{verdict}; " + ", ".join(said)


def rows() -> list[dict[str, str]]:
    return [
        {
            "hole": "round outcomes are the gateway's word",
            "attack": f"a gateway with a say writes {FORGED_ROUNDS} rounds charging an honest peer with "
            f"faults, then {RIGGED_ROUNDS} invented rounds with its real commitment and a colluding judge",
            "gained_after": gateway(),
            "gained_before": GATEWAY_BEFORE,
        },
        {
            "hole": "challenges carry their own questions",
            "attack": "a challenger with a say passes friends on its own question ('Say X.', X right), "
            "under its own item ids and under real bank ids",
            "gained_after": challenger(),
            "gained_before": CHALLENGER_BEFORE,
        },
    ]


if __name__ == "__main__":
    for row in rows():
        print(json.dumps(row, indent=2))
