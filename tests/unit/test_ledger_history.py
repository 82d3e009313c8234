"""The ledger's past against signers that lie about it, pure: checkpoints close it to backdated entries,
and a fork is kept as proof, settles alike on every ledger and costs its signer its say.

The honest network is tests.unit.test_consensus_ledger's: five peers that earned their say with
challenges, on a clock that starts at T0."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from consensus import GENESIS, Added, BadEntry, Checkpoint, Ledger, LedgerEntry, from_wire, make, verify
from consensus.checkpoint import epoch_before
from consensus.entry import CHECKPOINT_EVERY_S
from core.identity import Identity
from node.ledger import CHECKPOINT_DELAY_S, LedgerService
from tests.unit.test_consensus_ledger import (
    ALICE,
    BOB,
    GATEWAY,
    JUDGE,
    NOBODY,
    OTHER,
    PASS,
    RULES,
    challenge_record,
    established,
    round_record,
)

T0 = 1_000 * CHECKPOINT_EVERY_S + 5.0
HONEST = (GATEWAY, OTHER, ALICE, BOB, JUDGE)


class Clock:
    """A clock that ticks a millisecond a reading, so that entries written one after another are ordered."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 0.001
        return self.t


def network(clock: Clock, path: Path | None = None) -> Ledger:
    ledger = Ledger(path, clock=clock)
    established(ledger)
    ledger.append(GATEWAY, "round", round_record("r1"))
    return ledger


def sign_checkpoint(ledger: Ledger, clock: Clock, signers: tuple[Identity, ...]) -> Checkpoint:
    """The epoch that ended before the clock, signed as the ledger holds it by each of `signers`."""
    checkpoint = ledger.checkpoint(epoch_before(clock()))
    for signer in signers:
        ledger.append(signer, "checkpoint", checkpoint.to_record())
    return checkpoint


def closed(clock: Clock, path: Path | None = None) -> tuple[Ledger, Checkpoint]:
    """The network, its first epoch ended and signed by four of its five peers: final."""
    ledger = network(clock, path)
    clock.t += CHECKPOINT_EVERY_S
    checkpoint = sign_checkpoint(ledger, clock, (GATEWAY, ALICE, BOB, JUDGE))
    assert ledger.finals == [checkpoint]
    return ledger, checkpoint


def backdated() -> list[LedgerEntry]:
    """A fresh key's challenge of a friend dated at=1, the friend's of it at=2, and the pair's checkpoint
    of the epoch after them: a past in which the pair had the first say."""
    attacker, friend = Identity.generate(), Identity.generate()
    early = make(
        attacker, 0, GENESIS, 1.0, "challenge", challenge_record(friend, PASS, 0, by=attacker), RULES
    )
    back = make(friend, 0, GENESIS, 2.0, "challenge", challenge_record(attacker, PASS, 0, by=friend), RULES)
    heads = {attacker.peer_id: 1, friend.peer_id: 1}
    record = Checkpoint(CHECKPOINT_EVERY_S, heads).to_record()
    return [
        early,
        back,
        make(attacker, 1, early.digest, 61.0, "checkpoint", record, RULES),
        make(friend, 1, back.digest, 61.0, "checkpoint", record, RULES),
    ]


def standing(ledger: Ledger, entries: list[LedgerEntry]) -> list[tuple[float, bool]]:
    return [
        (ledger.book.score(e.gateway), ledger.book.eligible(e.gateway, "answer", ledger.rules))
        for e in entries
    ]


def test_a_checkpoint_is_final_once_its_signers_hold_more_than_half_the_say() -> None:
    clock = Clock()
    ledger = network(clock)
    clock.t += CHECKPOINT_EVERY_S
    checkpoint = sign_checkpoint(ledger, clock, (GATEWAY, ALICE))
    assert ledger.finals == []  # two of five equal says: not more than half
    sign_checkpoint(ledger, clock, (BOB,))
    assert ledger.finals == [checkpoint] and checkpoint.time == epoch_before(clock())
    # every entry dated before its time
    assert checkpoint.heads == {GATEWAY.peer_id: 5, OTHER.peer_id: 1, NOBODY.peer_id: 1}


def test_a_backdated_past_changes_nothing_once_a_checkpoint_is_final() -> None:
    clock = Clock()
    ledger, _ = closed(clock)
    before = (ledger.book.snapshot(), ledger.finals)
    attack = backdated()
    assert ledger.add_many(attack) == [Added.NEW] * 4
    assert all(ledger.void(e.gateway, e.seq) for e in attack)  # held, and spread, but never applied
    assert (ledger.book.snapshot(), ledger.finals) == before
    assert standing(ledger, attack[:2]) == [(0.0, False), (0.0, False)]


def test_without_a_final_checkpoint_a_backdated_past_takes_a_say_but_not_the_say() -> None:
    """What checkpoints close: in a network that wrote nothing down, the pair comes first in the order and
    ends the bootstrap. It can't lock the others out, though: two holders leave the domain open (fewer
    than min_holders), so the challenges written after them by anyone still count."""
    ledger = network(Clock())
    pair = backdated()[:2]
    ledger.add_many(pair)
    assert [eligible for _, eligible in standing(ledger, pair)] == [True, True]
    assert all(ledger.book.eligible(p.peer_id, "answer", ledger.rules) for p in HONEST)


def test_every_ledger_ends_on_the_same_past_whatever_order_it_hears_it_in() -> None:
    clock = Clock()
    source, _ = closed(clock)
    clock.t += 10
    attack = backdated()
    source.add_many(attack)
    source.append(ALICE, "challenge", challenge_record(BOB, PASS, 0, by=ALICE))
    entries = source.since({}, 10_000)
    # A node that was there all along hears the attack last, as the network wrote it; others hear it all
    # in any order, having learnt when the past closed.
    online = Ledger(clock=clock)
    for entry in sorted(entries, key=lambda e: (e in attack, e.key)):
        online.add(entry)
    outcomes = {(online.head, json.dumps(online.book.snapshot(), sort_keys=True))}
    for seed in range(4):
        random.Random(seed).shuffle(entries)
        replica = Ledger(clock=clock, finals=source.finals)
        replica.add_many([from_wire(e.to_wire()) for e in entries])
        outcomes.add((replica.head, json.dumps(replica.book.snapshot(), sort_keys=True)))
    assert outcomes == {(source.head, json.dumps(source.book.snapshot(), sort_keys=True))}


def test_a_backdated_checkpoint_never_becomes_final() -> None:
    clock = Clock()
    ledger, checkpoint = closed(clock)
    ledger.add_many(backdated())  # its epoch is long closed
    assert ledger.finals == [checkpoint]


def test_a_ledger_with_no_past_of_its_own_takes_a_peers_final_checkpoints() -> None:
    """From the entries alone a backdated past can't be told from the real one (both are signed, and in
    each, its signers earned their say): a new node takes the final checkpoints of the peer it pulls from,
    and checks them."""
    clock = Clock()
    source, _ = closed(clock)
    source.add_many(backdated())
    fresh = Ledger(clock=clock)
    fresh.add_many(source.since({}, 10_000))
    assert fresh.finals != source.finals  # from nothing, the earliest past that holds wins: the pair's
    taught = Ledger(clock=clock, finals=source.finals)
    taught.add_many(source.since({}, 10_000))
    assert (taught.head, taught.book, taught.finals) == (source.head, source.book, source.finals)


def test_an_established_gateway_cannot_write_into_its_closed_past() -> None:
    clock = Clock()
    ledger, _ = closed(clock)
    before = ledger.book.snapshot()
    tip = ledger.tip(OTHER.peer_id)
    assert tip is not None and tip.at < ledger.finals[-1].time  # quiet since before the checkpoint
    with pytest.raises(BadEntry, match="dated before the entry it follows"):
        ledger.add(
            make(
                OTHER, 1, tip.digest, tip.at - 1, "challenge", challenge_record(BOB, PASS, 0, by=OTHER), RULES
            )
        )
    # Its next link dated as its last one, before the checkpoint: taken, void.
    late = make(OTHER, 1, tip.digest, tip.at, "challenge", challenge_record(BOB, PASS, 0, by=OTHER), RULES)
    assert ledger.add(late) is Added.NEW and ledger.void(OTHER.peer_id, 1)
    assert ledger.book.snapshot() == before


def test_a_node_whose_clock_is_behind_dates_its_entries_from_the_epoch_others_signed() -> None:
    clock = Clock()
    ledger, checkpoint = closed(clock)
    clock.t = checkpoint.time - 30  # behind the signers, within the clock skew nodes allow
    entry = ledger.append(OTHER, "challenge", challenge_record(BOB, PASS, 0, by=OTHER))
    assert entry.at == checkpoint.time and not ledger.void(OTHER.peer_id, entry.seq)


def fork_of(ledger: Ledger, signer: Identity) -> tuple[LedgerEntry, LedgerEntry]:
    """Two entries with the signer's next seq: challenges of BOB and of JUDGE."""
    tip = ledger.tip(signer.peer_id)
    seq, prev = (tip.seq + 1, tip.digest) if tip else (0, GENESIS)
    return tuple(  # type: ignore[return-value]
        make(
            signer, seq, prev, ledger.clock(), "challenge", challenge_record(peer, PASS, 0, by=signer), RULES
        )
        for peer in (BOB, JUDGE)
    )


def test_a_fork_is_proven_and_settles_alike_on_every_ledger() -> None:
    clock = Clock()
    one, _ = closed(clock)
    two = Ledger(clock=clock, finals=one.finals)
    two.add_many(one.since({}, 10_000))
    assert one.book.eligible(GATEWAY.peer_id, "answer", one.rules)
    a, b = fork_of(one, GATEWAY)
    one.add(a)
    two.add(b)
    assert one.head != two.head
    # One pulls from two: its last entry of the chain is not two's, so two sends its own first.
    pulled = two.since(one.heads(), 100, one.tips())
    assert pulled[0] == b and one.add_many(pulled)[0] is Added.FORK
    # The proof spreads: two takes it, and holds what one holds.
    assert two.add(one.forks()[GATEWAY.peer_id]) is Added.FORK
    for ledger in (one, two):
        assert set(ledger.forks()[GATEWAY.peer_id].digests) == {a.digest, b.digest}
        assert ledger.book.banned(GATEWAY.peer_id) and ledger.book.score(GATEWAY.peer_id) == 0
        assert ledger.heads()[GATEWAY.peer_id] == a.seq  # cut where it forked
    assert (one.head, one.book) == (two.head, two.book)
    with pytest.raises(BadEntry, match="forked at entry"):
        one.add(
            make(GATEWAY, a.seq + 1, a.digest, clock(), "challenge", challenge_record(BOB, PASS, 0), RULES)
        )


def test_forks_and_final_checkpoints_are_kept_on_disk_and_verify(tmp_path: Path) -> None:
    clock = Clock()
    ledger, _ = closed(clock, tmp_path / "ledger.db")
    ledger.add_many(backdated())
    ledger.add_many(fork_of(ledger, ALICE))
    head, book, finals, forks = ledger.head, ledger.book.snapshot(), ledger.finals, ledger.forks()
    ledger.close()
    again = Ledger(tmp_path / "ledger.db", clock=clock)
    assert (again.head, again.book.snapshot(), again.finals, again.load_failures) == (head, book, finals, [])
    assert again.forks().keys() == forks.keys()
    checked, failures = verify(again.stored())
    assert failures == [] and checked.head == head


def test_verify_finds_a_checkpoint_held_as_final_that_is_not() -> None:
    clock = Clock()
    ledger = network(clock)
    clock.t += CHECKPOINT_EVERY_S
    sign_checkpoint(ledger, clock, (GATEWAY,))  # one of five: not final
    wires = [*ledger.stored(), {"final": ledger.checkpoint(epoch_before(clock())).to_record()}]
    _, failures = verify(wires)
    assert any("held as final, and is not" in f for f in failures)


def test_a_node_with_a_say_signs_each_epoch_once_after_its_last_entries_came() -> None:
    clock = Clock()
    ledger = network(clock)
    node = LedgerService(GATEWAY, None, ledger)
    end = epoch_before(clock()) + CHECKPOINT_EVERY_S
    clock.t = end + CHECKPOINT_DELAY_S - 1
    # This epoch's last entries may still come, and nothing is dated before the end of the one before.
    assert node.sign_checkpoint(clock.t) is None
    clock.t = end + CHECKPOINT_DELAY_S
    entry = node.sign_checkpoint(clock.t)
    assert entry is not None and entry.record == ledger.checkpoint(end).to_record()
    assert node.sign_checkpoint(clock.t + 1) is None  # once an epoch
    assert LedgerService(Identity.generate(), None, ledger).sign_checkpoint(clock.t) is None  # no say
