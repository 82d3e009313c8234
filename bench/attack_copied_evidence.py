"""Attacks by a key with no say on others' entries: copy an honest round's or challenge's entry (the
signed commitments, reveals and ballots in it) under its own key, dated a second earlier, or write an
entry of the same id with nothing in it. Its entry counts for nothing (it has no say), but if it closes
the id, the honest entry, applied after it in time order, is ignored on every node.

    python -m bench.attack_copied_evidence

Run on the ledger's rules alone, with no network: a ledger where every peer earned its say by passing
challenges (`bench.attack_ledger_claims.network`), an honest round its gateway wrote that Alice wins,
an honest challenge of a newcomer; then the attacker's entries, received as a node receives a peer's
(checked by `consensus.from_wire`). Measured: Alice's gain from the round, and the newcomer's score and
say, with the attack against without it.

`rows()` says what the attacker took away; `gained_before` is the same code run against the commit
before the fix, `PYTHONPATH` pointing at a worktree of it.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from bench.attack_ledger_claims import BANK, network
from consensus import GENESIS, BadEntry, Ledger, from_wire
from consensus.entry import KIND
from core.identity import Identity
from core.statements import commitment_digest, sign
from reputation import Rules

BEFORE = "ccdfd27"
# Measured by running rows() on the commit before the fix.
ROUND_BEFORE = (
    "the copy taken: Alice kept -0.0001 of her gain of 0.4799; the empty entry of the round's id taken: "
    "Alice kept -0.0001 of her gain of 0.4799"
)
CHALLENGE_BEFORE = "the copy taken: the newcomer's score 0.00 instead of 6.00 (no say instead of a say)"


def asked(peer: Identity, gateway: Identity, round_id: str, model: str, text: str) -> tuple[Any, Any]:
    """The peer's commitment to `text` and its reveal, given to `gateway`, as a node signs them."""
    digest = commitment_digest(round_id, model, "salt", text)
    given = {"round": round_id, "model": model, "gateway": gateway.peer_id}
    commitment = sign(peer, "commitment", {**given, "digest": digest})
    reveal = sign(peer, "reveal", {**given, "answer": text, "salt": "salt"})
    return commitment.to_wire(), reveal.to_wire()


def honest_round(gateway: Identity, alice: Identity, bob: Identity, judge: Identity) -> dict[str, Any]:
    """A round `gateway` ran: Alice's and Bob's answers, the judge preferring Alice's and finding it GOOD."""
    rid = uuid.uuid4().hex
    candidates = [
        {"cid": cid, "model": "m", "peer": p.peer_id, "commitment": asked(p, gateway, rid, "m", text)[0]}
        for cid, (p, text) in enumerate([(alice, "an answer"), (bob, "another")])
    ]
    body = {
        "round": rid,
        "gateway": gateway.peer_id,
        "votes": [[0, 1, "A"]],
        "verdicts": {"0": "GOOD", "1": "BAD"},
    }
    return {
        "round": rid,
        "mode": "consensus",
        "candidates": candidates,
        "ballots": [sign(judge, "ballot", body).to_wire()],
        "winner": 0,
        "domain": "general",
        "reported": {"chosen": {}, "missed": {}, "malformed": {}},
    }


def honest_challenge(challenger: Identity, peer: Identity) -> dict[str, Any]:
    """A challenge `challenger` ran, the peer right on as many bank questions as earn a say at once."""
    answers = []
    for item in BANK[: int(getattr(Rules(), "say_min_items", 3))]:
        commitment, reveal = asked(peer, challenger, uuid.uuid4().hex, "m", item.answers[0])
        key = f"{item.dataset}/{item.id}"
        answers.append({"item": key, "correct": True, "commitment": commitment, "reveal": reveal})
    return {"challenge": uuid.uuid4().hex, "peer": peer.peer_id, "model": "m", "answers": answers}


def received(ledger: Ledger, signer: Identity, at: float, type: str, record: dict[str, Any]) -> str:
    """The attacker's first entry, dated `at`, as a node receives it: 'taken' or 'refused'."""
    body = {
        "seq": 0,
        "prev": GENESIS,
        "at": at,
        "rules": ledger.rules.digest(),
        "type": type,
        "record": record,
    }
    try:
        ledger.add(from_wire(sign(signer, KIND, body).to_wire()))
    except BadEntry:
        return "refused"
    return "taken"


class Clock:
    """An hour ago, a millisecond a reading: the network's entries in the order they are written."""

    def __init__(self) -> None:
        self.t = time.time() - 3600

    def __call__(self) -> float:
        self.t += 0.001
        return self.t


def established(*peers: Identity) -> Ledger:
    """The network, its clock then a minute on: the attacker's entry, dated a second before the honest
    one, comes after every entry that gave a say."""
    clock = Clock()
    ledger = network(*peers, ledger=Ledger(clock=clock))
    clock.t += 60
    return ledger


def replica(source: Ledger) -> Ledger:
    ledger = Ledger()
    ledger.add_many(source.since({}, 10_000))
    return ledger


def round_attacks() -> str:
    gateway, alice, bob, judge = (Identity.generate() for _ in range(4))
    ledger = established(gateway, alice, bob, judge)
    before = ledger.book.score(alice.peer_id)
    honest = ledger.append(gateway, "round", honest_round(gateway, alice, bob, judge))
    gain = ledger.book.score(alice.peer_id) - before
    said = []
    empty = {**honest.record, "candidates": [], "ballots": [], "winner": None}
    for what, record in (("the copy", honest.record), ("the empty entry of the round's id", empty)):
        attacked = replica(ledger)
        verdict = received(attacked, Identity.generate(), honest.at - 1, "round", record)
        kept = attacked.book.score(alice.peer_id) - before
        said.append(f"{what} {verdict}: Alice kept {kept:.4f} of her gain of {gain:.4f}")
    return "; ".join(said)


def challenge_attack() -> str:
    challenger, newcomer = Identity.generate(), Identity.generate()
    ledger = established(challenger)
    honest = ledger.append(challenger, "challenge", honest_challenge(challenger, newcomer))
    attacked = replica(ledger)
    verdict = received(attacked, Identity.generate(), honest.at - 1, "challenge", honest.record)

    def say(of: Ledger) -> str:
        return "a say" if of.book.eligible(newcomer.peer_id, "answer", of.rules) else "no say"

    score, real = attacked.book.score(newcomer.peer_id), ledger.book.score(newcomer.peer_id)
    return (
        f"the copy {verdict}: the newcomer's score {score:.2f} instead of {real:.2f} "
        f"({say(attacked)} instead of {say(ledger)})"
    )


def rows() -> list[dict[str, str]]:
    return [
        {
            "hole": "a sayless key cancels an honest round by copying it",
            "attack": "a key with no say posts a copy of an honest round's entry dated 1 s earlier, or an "
            "entry of the round's id with no candidates",
            "gained_after": round_attacks(),
            "gained_before": f"{ROUND_BEFORE} (on {BEFORE})",
        },
        {
            "hole": "a sayless key cancels an honest challenge by copying it",
            "attack": "a key with no say posts a copy of an honest challenge's entry dated 1 s earlier",
            "gained_after": challenge_attack(),
            "gained_before": f"{CHALLENGE_BEFORE} (on {BEFORE})",
        },
    ]


if __name__ == "__main__":
    for row in rows():
        print(json.dumps(row, indent=2))
