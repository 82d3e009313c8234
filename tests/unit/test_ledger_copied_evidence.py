"""Attack: another key copies an honest round's (or challenge's) evidence into an entry of its own, dated a
little earlier. Under a key with no say its entry counts for nothing, but used to close the round's id, so
the honest gateway's entry, applied after it, was ignored on every node (the answerer's gain went from
0.25 to 0.0003); under a key with a say it would count the round twice. The evidence names the gateway
it was given to, and ids close per writer."""

from __future__ import annotations

from typing import Any

import pytest

from consensus import GENESIS, BadEntry, Ledger, LedgerEntry, from_wire
from consensus.entry import KIND
from core.identity import Identity
from core.statements import sign
from tests.unit.test_consensus_ledger import (
    ALICE,
    BOB,
    GATEWAY,
    OTHER,
    PASS,
    RULES,
    challenge_record,
    established,
)
from tests.unit.test_consensus_ledger import round_record as signed_round


def received(signer: Identity, at: float, type: str, record: dict[str, Any]) -> LedgerEntry:
    """A first entry of `signer`, dated `at`, as a node receives it from a peer (checked on the way in)."""
    body = {"seq": 0, "prev": GENESIS, "at": at, "rules": RULES, "type": type, "record": record}
    return from_wire(sign(signer, KIND, body).to_wire())


def honest_network() -> tuple[Ledger, LedgerEntry, float]:
    """An established network, then the gateway's honest round that Alice wins; and Alice's gain from it."""
    ledger = Ledger()
    established(ledger)
    before = ledger.book.score(ALICE.peer_id)
    entry = ledger.append(GATEWAY, "round", signed_round("honest"))
    return ledger, entry, ledger.book.score(ALICE.peer_id) - before


def replica(source: Ledger) -> Ledger:
    ledger = Ledger()
    ledger.add_many(source.since({}, 10_000))
    return ledger


def test_a_round_copied_under_another_key_is_refused() -> None:
    _, honest, gain = honest_network()
    assert gain > 0.2
    sayless = Identity.generate()
    for copier in (sayless, OTHER):  # a key with no say, and one with a say that would count it twice
        with pytest.raises(BadEntry, match="given to another gateway"):
            received(copier, honest.at - 1, "round", honest.record)
    # Nor can a copier re-sign the honest judges' ballots beside evidence of its own: each names the gateway.
    record = signed_round("honest", by=sayless)
    record["ballots"] = honest.record["ballots"]
    with pytest.raises(BadEntry, match=r"ballot .* given to another gateway"):
        received(sayless, honest.at - 1, "round", record)


def test_an_earlier_entry_of_the_same_round_id_by_another_key_does_not_cancel_the_round() -> None:
    ledger, honest, gain = honest_network()
    attacked = replica(ledger)
    # What passes every check with the round's id on it: a round with no candidates, dated before.
    empty = {**honest.record, "candidates": [], "ballots": [], "winner": None}
    attacked.add(received(Identity.generate(), honest.at - 1, "round", empty))
    assert not attacked.void(GATEWAY.peer_id, honest.seq)
    # Alice keeps her whole gain from the honest round (before the fix: 0.0003 of 0.25).
    alice_before = ledger.book.score(ALICE.peer_id) - gain
    assert gain > 0.2 and attacked.book.score(ALICE.peer_id) - alice_before == pytest.approx(gain)
    assert attacked.book.score(BOB.peer_id) == pytest.approx(ledger.book.score(BOB.peer_id))
    # The gateway's own id is closed for the gateway alone: its round applied twice counts once.
    assert attacked.book.is_closed(f"{GATEWAY.peer_id}/honest")


def test_a_challenge_copied_or_its_id_taken_by_another_key_does_not_cancel_it() -> None:
    ledger = Ledger()
    established(ledger)
    peer = Identity.generate()
    before = ledger.book.tally(peer.peer_id, "general", ledger.rules).asked
    honest = ledger.append(GATEWAY, "challenge", challenge_record(peer, PASS, 0, cid="honest"))
    counted = ledger.book.tally(peer.peer_id, "general", ledger.rules).asked - before
    assert counted == PASS
    with pytest.raises(BadEntry, match="given to another gateway"):
        received(OTHER, honest.at - 1, "challenge", honest.record)
    attacked = replica(ledger)
    empty = {**honest.record, "answers": []}
    attacked.add(received(Identity.generate(), honest.at - 1, "challenge", empty))
    assert attacked.book.tally(peer.peer_id, "general", attacked.rules) == ledger.book.tally(
        peer.peer_id, "general", ledger.rules
    )
