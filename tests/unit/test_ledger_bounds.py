"""Hole 9 in the ledger: what a stranger's key can make every node hold. Entries that came ahead of their
predecessors wait in bounded room, for a bounded time; a chain holds a bounded number of entries beyond
the last final checkpoint, a writer without a say a bounded number in all. Each test plays the attacker
with bench.attack_resource_bounds's flood."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

import consensus.ledger
from bench.attack_resource_bounds import stranger_chain
from consensus import Added, BadEntry, Ledger, LedgerEntry, from_wire, verify
from consensus.ledger import MAX_WAITING_PER_CHAIN, WAITING_FOR_S
from core.identity import Identity
from node.ledger import LedgerService
from tests.unit.test_consensus_ledger import ALICE, BOB, GATEWAY, JUDGE, round_record
from tests.unit.test_ledger_history import T0, Clock, closed, sign_checkpoint

SYBIL = Identity.generate()


def test_one_key_flooding_the_wait_fills_only_its_own_room_and_an_honest_gap_still_closes() -> None:
    ledger = Ledger(clock=Clock())
    flood = stranger_chain(SYBIL, MAX_WAITING_PER_CHAIN + 50, T0)
    rejected: list[BadEntry] = []
    added = ledger.add_many(flood[1:], rejected)  # its entry 0 withheld: all of them wait for it
    assert added == [Added.WAITING] * MAX_WAITING_PER_CHAIN
    assert len(rejected) == 49 and "wait for their predecessors already" in str(rejected[0])
    honest = stranger_chain(GATEWAY, 3, T0)
    assert ledger.add_many(honest[1:]) == [Added.WAITING, Added.WAITING]
    assert ledger.add(honest[0]) == Added.NEW
    assert ledger.heads()[GATEWAY.peer_id] == 3
    assert len(ledger.waiting()) == MAX_WAITING_PER_CHAIN


def test_many_keys_filling_the_whole_wait_push_out_their_own_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consensus.ledger, "MAX_WAITING", 40)
    monkeypatch.setattr(consensus.ledger, "MAX_WAITING_PER_CHAIN", 8)
    ledger = Ledger(clock=Clock())
    for _ in range(10):
        ledger.add_many(stranger_chain(Identity.generate(), 9, T0)[1:], [])
    assert len(ledger.waiting()) == 40
    honest = stranger_chain(GATEWAY, 3, T0)
    assert ledger.add_many(honest[1:]) == [Added.WAITING, Added.WAITING]
    assert len(ledger.waiting()) == 40
    assert ledger.add(honest[0]) == Added.NEW and ledger.heads()[GATEWAY.peer_id] == 3


def test_an_entry_whose_predecessor_never_comes_is_dropped_by_this_nodes_clock() -> None:
    clock = Clock()
    ledger = Ledger(clock=clock)
    # Dated far ahead of the clock (within the skew): its own date must not keep it waiting.
    ledger.add_many(stranger_chain(SYBIL, 20, clock.t + 250)[1:])
    assert len(ledger.waiting()) == 19
    clock.t += WAITING_FOR_S - 1
    honest = stranger_chain(GATEWAY, 2, clock.t)
    assert ledger.add(honest[1]) == Added.WAITING
    assert len(ledger.waiting()) == 20  # not yet
    clock.t += 1
    assert ledger.add(stranger_chain(Identity.generate(), 2, clock.t)[1]) == Added.WAITING
    assert ledger.waiting()[0] != (SYBIL.peer_id, 1) and (GATEWAY.peer_id, 1) in ledger.waiting()
    assert len(ledger.waiting()) == 2
    assert ledger.add(honest[0]) == Added.NEW and ledger.heads()[GATEWAY.peer_id] == 2


@pytest.fixture
def allowance(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(consensus.ledger, "MAX_OPEN_ENTRIES", 30)
    return 30


def test_a_writer_without_a_say_holds_its_allowance_and_no_more_on_every_node(allowance: int) -> None:
    clock = Clock()
    ledger, final = closed(clock)
    flood = stranger_chain(SYBIL, allowance + 20, clock.t)
    rejected: list[BadEntry] = []
    ledger.add_many(flood, rejected)
    assert ledger.heads()[SYBIL.peer_id] == allowance
    assert len(rejected) == 20 and "had no say there" in str(rejected[0])
    # Another node, taking the network and the flood in any order, with the final checkpoint first or
    # not, holds the same and computes the same.
    everything = [*ledger.since({}, 10_000), *flood]
    for adopt in (True, False):
        random.shuffle(everything)
        other = Ledger(clock=Clock(clock.t))
        if adopt:
            other.adopt([final])
        for start in range(0, len(everything), 7):
            other.add_many(everything[start : start + 7], [])
        for _ in range(3):  # pulls again: what waited or was refused comes again
            other.add_many(ledger.since(other.heads(), 10_000), [])
        assert other.heads() == ledger.heads() and other.head == ledger.head
        assert other.book == ledger.book


def test_a_writer_with_a_say_holds_its_allowance_beyond_each_final_checkpoint(allowance: int) -> None:
    clock = Clock()
    ledger, final = closed(clock)
    covered = final.covered(GATEWAY.peer_id)
    for n in range(covered + allowance - ledger.heads()[GATEWAY.peer_id]):
        ledger.append(GATEWAY, "round", round_record(f"busy-{n}"))
    with pytest.raises(BadEntry, match=r"beyond the last final checkpoint already$"):
        ledger.append(GATEWAY, "round", round_record("one too many"))
    assert ledger.heads()[GATEWAY.peer_id] == covered + allowance
    # Its checkpoint still goes in, and once final the next entries do too.
    clock.t += 60
    sign_checkpoint(ledger, clock, (GATEWAY, ALICE, BOB, JUDGE))
    assert ledger.finals[-1].covered(GATEWAY.peer_id) == covered + allowance
    ledger.append(GATEWAY, "round", round_record("the next"))


def test_a_node_past_its_allowance_logs_why_and_makes_no_entry(
    allowance: int, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    ledger, final = closed(clock)
    service = LedgerService(GATEWAY, None, ledger)
    n = 0
    while ledger.heads()[GATEWAY.peer_id] < final.covered(GATEWAY.peer_id) + allowance:
        assert service.record("round", round_record(f"mine-{n}")) is not None
        n += 1
    held = ledger.heads()[GATEWAY.peer_id]
    assert service.record("round", round_record("past it")) is None
    assert ledger.heads()[GATEWAY.peer_id] == held
    assert "beyond the last final checkpoint" in caplog.text


# ---- opening: only what was not verified before is verified


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[LedgerEntry]:
    """Every entry the ledger verifies in full (signatures, evidence), as it does."""
    checked: list[LedgerEntry] = []

    def counted(wire: Any) -> LedgerEntry:
        checked.append(from_wire(wire))
        return checked[-1]

    monkeypatch.setattr(consensus.ledger, "from_wire", counted)
    return checked


def stored(path: Path, rounds: int = 30) -> Ledger:
    """A network's ledger on disk, `rounds` rounds after its first final checkpoint, closed."""
    clock = Clock()
    ledger, _ = closed(clock, path)
    for n in range(rounds):
        ledger.append(GATEWAY, "round", round_record(f"r-{n}"))
    ledger.close()
    return ledger


def same_as_full(ledger: Ledger) -> None:
    full, failures = verify(ledger.stored())
    assert not failures
    assert (ledger.head, ledger.heads()) == (full.head, full.heads())
    assert ledger.book == full.book


def test_a_restart_verifies_only_the_entries_not_verified_before(
    tmp_path: Path, verified: list[LedgerEntry]
) -> None:
    path = tmp_path / "ledger.db"
    before = stored(path)
    verified.clear()
    again = Ledger(path)
    assert verified == [] and again.checked_on_load == 0
    assert again.head == before.head and len(again) == len(before)
    same_as_full(again)
    again.close()
    # Rows put there behind the ledger's back (an operator's copy from another node): verified once.
    extra = stranger_chain(SYBIL, 5, T0)
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO entries (gateway, seq, digest, wire) VALUES (?, ?, ?, ?)",
            [(e.gateway, e.seq, e.digest, json.dumps(e.to_wire())) for e in extra],
        )
    verified.clear()
    grown = Ledger(path)
    assert sorted(e.seq for e in verified) == [0, 1, 2, 3, 4] and grown.heads()[SYBIL.peer_id] == 5
    grown.close()
    verified.clear()
    assert Ledger(path).checked_on_load == 0 and verified == []


TAMPERED = {
    "the noted digest": "UPDATE verified SET tip = '" + "0" * 64 + "' WHERE gateway = :gateway",
    "the noted count": "UPDATE verified SET count = count + 3 WHERE gateway = :gateway",
    "the rules": "UPDATE meta SET value = '" + "1" * 64 + "' WHERE key = 'verified_rules'",
    "a row": "UPDATE entries SET wire = replace(wire, '\"r-7\"', '\"r-x\"') WHERE gateway = :gateway",
    "a row gone": "DELETE FROM entries WHERE gateway = :gateway AND seq = 9",
}


@pytest.mark.parametrize("what", sorted(TAMPERED))
def test_a_prefix_that_does_not_match_the_disk_is_verified_again_in_full(
    tmp_path: Path, verified: list[LedgerEntry], what: str
) -> None:
    path = tmp_path / "ledger.db"
    before = stored(path)
    with sqlite3.connect(path) as db:
        assert db.execute(TAMPERED[what], {"gateway": GATEWAY.peer_id}).rowcount >= 1
    verified.clear()
    again = Ledger(path)
    assert again.checked_on_load == len(verified) >= len(before) - 1
    if what == "a row gone":  # the chain goes on from its last entry before the gap, the rest set aside
        assert again.heads()[GATEWAY.peer_id] == 9
    elif what == "a row":
        assert again.heads()[GATEWAY.peer_id] < before.heads()[GATEWAY.peer_id] and again.load_failures
    else:
        assert again.head == before.head and not again.load_failures
    same_as_full(again)


def test_what_was_stored_loads_whole_past_the_allowance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.db"
    before = stored(path)
    # Taken under the rule of its time (here, a larger allowance): neither opening nor verify drops it.
    monkeypatch.setattr(consensus.ledger, "MAX_OPEN_ENTRIES", 5)
    again = Ledger(path)
    assert (again.heads(), again.load_failures) == (before.heads(), [])
    same_as_full(again)
