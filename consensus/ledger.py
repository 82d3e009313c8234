"""The ledger: every verified entry, kept in SQLite, applied in one order to one reputation book.

Entries come from many gateways, in whatever order the network delivers them.
Each gateway's entries must form an unbroken chain: an entry is taken only
when it is the next link of its gateway's chain (`prev` is the digest of the
entry before it); one that arrives ahead of its predecessor waits, in memory,
for the predecessor to be pulled; one that breaks the chain, goes back in time
along it or comes from too far in the future is rejected. Two entries of one
gateway with one seq are a fork (`consensus.fork`): both are kept as the proof,
the chain is cut there and its gateway loses its say for good.

The reputation book is the entries applied in the order of `LedgerEntry.key`
(time, gateway, seq), but for those the final checkpoints void: an entry dated
before a final checkpoint that the checkpoint does not cover counts for nothing
(`consensus.checkpoint`), so the past the network wrote down is closed. The
ledger keeps its final checkpoints and evaluates only later epochs. `head`
digests the entries in that order, the forks and the final checkpoints, so two
nodes compare ledgers by comparing heads: nodes holding the same entries and
forks, whatever order they came in, hold the same head and book. An entry that
lands before the end of that order makes the book be recomputed, once per
batch; so does a checkpoint that does not cover exactly what was held at its
time.

Stored in SQLite in WAL mode with full sync: the entries, the forks and the
final checkpoints of a batch are on disk, in one transaction, before they
count, so a node killed at any point restarts with a prefix of every chain it
had and pulls the rest. What is on disk is checked again when the ledger opens:
an entry that fails, and the rest of its chain after it, are moved to a
`set_aside` table; a final checkpoint that no longer holds is dropped, with
every one after it. So that opening does not take longer with every entry
ever taken, the disk also notes how far each chain was verified, under which
rules (`verified`, in the transaction that stores the entries): that prefix
is parsed, not verified again, and each of its links is checked by digest,
ending on the digest noted, which pins every byte of it. Only entries past it
are verified; a prefix that doesn't end where it says (a row changed, gone,
or other rules) makes the whole ledger be verified again.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from core.envelope import DEFAULT_MAX_SKEW_S
from core.identity import Identity
from core.statements import Statement
from core.storage import open_sqlite
from reputation.apply import apply_challenge, apply_round_evidence
from reputation.rules import Rules
from reputation.standing import Standing
from routing.datasets import ChallengeBank, challenge_bank
from routing.grading import GRADER_VERSION

from .checkpoint import Checkpoint, carries, epoch_before, say
from .entry import (
    CHECKPOINT_EVERY_S,
    EVIDENCE_FORMAT,
    GENESIS,
    BadEntry,
    EntryType,
    LedgerEntry,
    from_wire,
    grade_challenge,
    make,
)
from .fork import Fork, fork_from_wire

log = logging.getLogger("swarm.ledger")

MAX_SKEW_S = 300.0  # how far ahead of this node's clock an entry's time may be
# Entries held back for a missing predecessor: at most this many in all, and of one chain (a pull brings
# each chain in order, so an honest gap is a few gossiped entries), each for at most this long by this
# node's clock (never by the entry's own date): one key can't fill the wait for everyone, nor for good.
MAX_WAITING = 10_000
MAX_WAITING_PER_CHAIN = 256
WAITING_FOR_S = 600.0
# A chain holds at most this many entries beyond what the last final checkpoint covers of it, and a
# writer that had no say at that checkpoint (whose rounds and challenges count for nothing) this many in
# all: one key can't make every node store endless entries (see README, Security).
MAX_OPEN_ENTRIES = 1000
RECENT_EPOCHS = 4  # epochs back for which the say at their end is kept, to settle checkpoints as they come
_EMPTY_HEAD = hashlib.sha256(b"swarm-ledger-v1").hexdigest()

Key = tuple[float, str, int]


class Added(Enum):
    NEW = "new"
    KNOWN = "known"
    WAITING = "waiting"  # for an earlier entry of its chain
    FORK = "fork"  # a new proof that its gateway forked its chain: the chain is cut there


def chain_head(head: str, digest: str) -> str:
    return hashlib.sha256(f"{head}{digest}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _Say:
    """Who had a say at the end of an epoch, and how many entries of each chain were held dated before it."""

    say: dict[str, float]
    counts: dict[str, int]


@dataclass
class _Batch:
    """What one call changed, stored in one transaction."""

    new: list[LedgerEntry] = field(default_factory=list)
    forks: list[Fork] = field(default_factory=list)


class _Waiting:
    """The entries that came ahead of their predecessors, by (gateway, seq), each with when it came. Past
    MAX_WAITING_PER_CHAIN of one chain an entry is refused; past MAX_WAITING in all, the chain holding the
    most gives up its furthest entry, so a flood of many keys pushes out its own entries first."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, int], tuple[LedgerEntry, float]] = {}  # in the order they came
        self._per_chain: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._held)

    def keys(self) -> list[tuple[str, int]]:
        return sorted(self._held)

    def get(self, key: tuple[str, int]) -> LedgerEntry | None:
        held = self._held.get(key)
        return None if held is None else held[0]

    def hold(self, entry: LedgerEntry, now: float) -> None:
        gateway = entry.gateway
        if self._per_chain[gateway] >= MAX_WAITING_PER_CHAIN:
            raise BadEntry(
                f"{MAX_WAITING_PER_CHAIN} entries of {gateway} wait for their predecessors already; "
                f"dropped entry {entry.seq}"
            )
        if len(self._held) >= MAX_WAITING:
            fullest, held = self._per_chain.most_common(1)[0]
            if held <= self._per_chain[gateway] + 1:
                raise BadEntry(
                    f"too many entries wait for their predecessors; dropped entry {entry.seq} of {gateway}"
                )
            self.take(max(key for key in self._held if key[0] == fullest))
        self._held[(gateway, entry.seq)] = (entry, now)
        self._per_chain[gateway] += 1

    def take(self, key: tuple[str, int]) -> LedgerEntry | None:
        held = self._held.pop(key, None)
        if held is None:
            return None
        self._per_chain[key[0]] -= 1
        if not self._per_chain[key[0]]:
            del self._per_chain[key[0]]
        return held[0]

    def drop_chain(self, gateway: str, seq: int) -> None:
        """Drop what waits of the chain from `seq` on."""
        for key in [k for k in self._held if k[0] == gateway and k[1] >= seq]:
            self.take(key)

    def expire(self, now: float) -> None:
        """Drop what has waited WAITING_FOR_S or longer: its predecessor is not coming."""
        for key, (_, came) in list(self._held.items()):
            if now - came < WAITING_FOR_S:
                break  # the rest came later
            self.take(key)

    def clear(self) -> None:
        self._held.clear()
        self._per_chain.clear()


class Ledger:
    def __init__(
        self,
        path: Path | None = None,
        rules: Rules = Rules(),
        *,
        bank: ChallengeBank | None = None,
        clock: Callable[[], float] = time.time,
        max_skew_s: float = MAX_SKEW_S,
        finals: Iterable[Checkpoint] = (),
        bounded: bool = True,
    ) -> None:
        """`bank` is the challenge questions the rules name (by default, the open network's). `finals` are
        the checkpoints another ledger holds as final (see `verify`): they are checked, not taken on trust,
        but the epochs before the last of them are closed here too. `bounded`: entries past their chain's
        allowance are refused (`_check_allowance`); not in a ledger that checks what another one stored,
        nor while what this one stored loads: it was taken under the rule then."""
        if rules.grader != GRADER_VERSION:
            raise ValueError(
                f"the rules grade challenges with grader {rules.grader}, this one is {GRADER_VERSION}"
            )
        if rules.evidence != EVIDENCE_FORMAT:
            raise ValueError(
                f"the rules name evidence format {rules.evidence}, this ledger's is {EVIDENCE_FORMAT}"
            )
        self.bank = challenge_bank() if bank is None else bank
        if self.bank.digest != rules.challenge_bank:
            raise ValueError(
                f"the rules name the challenge bank {rules.challenge_bank[:12]}, not {self.bank.digest[:12]}"
            )
        self.rules = rules
        self.rules_digest = rules.digest()
        self.clock = clock
        self.max_skew_s = max_skew_s
        self.bounded = bounded
        self._reset(list(finals))
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = open_sqlite(path, synchronous="FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS entries (gateway TEXT NOT NULL, seq INTEGER NOT NULL, "
                "digest TEXT NOT NULL, wire TEXT NOT NULL, PRIMARY KEY (gateway, seq))"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS forks (gateway TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
                "first TEXT NOT NULL, second TEXT NOT NULL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS finals (time INTEGER PRIMARY KEY, record TEXT NOT NULL)"
            )
            # Per chain, how many of its entries were verified, and the digest of the last of them.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS verified (gateway TEXT PRIMARY KEY, count INTEGER NOT NULL, "
                "tip TEXT NOT NULL)"
            )
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._load()

    def _reset(self, finals: list[Checkpoint]) -> None:
        self.load_failures: list[str] = []
        self._entries: dict[tuple[str, int], LedgerEntry] = {}
        self._tips: dict[str, LedgerEntry] = {}
        self._ats: dict[str, list[float]] = {}  # per chain, each entry's time by seq
        self._waiting = _Waiting()
        self._order: list[Key] = []
        self._forks: dict[str, Fork] = {}
        self._finals = finals
        self._finals_changed = False  # since the disk last had them
        # Checkpoints signed: epoch -> record digest -> signers; the records by digest; per signer the
        # last epoch its chain signed; every epoch signed, in order.
        self._signatures: dict[int, dict[str, set[str]]] = {}
        self._records: dict[str, Checkpoint] = {}
        self._signed: dict[str, int] = {}
        self._epochs: list[int] = []
        self._void: set[tuple[str, int]] = set()
        self._say_at: dict[int, _Say] = {}  # at the ends of recent epochs not yet final
        self._final_say: dict[str, float] = {}  # who had a say at the last final checkpoint
        self.checked_on_load = 0  # entries verified in full when the ledger opened
        self._book = Standing()
        self._entries_head = _EMPTY_HEAD  # the entries alone, in order
        self._finals_head = _EMPTY_HEAD  # the final checkpoints alone, in order
        self._dirty = bool(finals)  # what the order makes (book, head, voids, finals) is stale

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ---- reading

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def book(self) -> Standing:
        self._refresh()
        return self._book

    @property
    def head(self) -> str:
        """A digest of every entry in the order they are applied, then of the forks and the final
        checkpoints: equal on nodes holding the same."""
        self._refresh()
        head = self._entries_head
        for gateway, fork in sorted(self._forks.items()):
            head = chain_head(head, f"fork {gateway} {fork.seq}")
        return chain_head(head, self._finals_head) if self._finals else head

    def heads(self) -> dict[str, int]:
        """Per gateway, how many of its entries this ledger holds (the seq it needs next)."""
        return {gateway: tip.seq + 1 for gateway, tip in sorted(self._tips.items())}

    def tips(self) -> dict[str, str]:
        """Per gateway, the digest of the last of its entries this ledger holds."""
        return {gateway: tip.digest for gateway, tip in sorted(self._tips.items())}

    def tip(self, gateway: str) -> LedgerEntry | None:
        return self._tips.get(gateway)

    def forks(self) -> dict[str, Fork]:
        """Per gateway proved to have forked its chain, the proof."""
        return dict(sorted(self._forks.items()))

    @property
    def finals(self) -> list[Checkpoint]:
        """The final checkpoints, in time order: what they cover, and nothing else before them, counts."""
        self._refresh()
        return list(self._finals)

    def void(self, gateway: str, seq: int) -> bool:
        """Whether the entry is dated before a final checkpoint that does not cover it: held, not applied."""
        self._refresh()
        return (gateway, seq) in self._void

    def holds(self, checkpoint: Checkpoint) -> bool:
        """Whether this ledger holds every entry the checkpoint covers."""
        return all(
            checkpoint.covered(g, self._cut_at(g)) <= len(self._ats.get(g, ())) for g in checkpoint.heads
        )

    def waiting(self) -> list[tuple[str, int]]:
        """The (gateway, seq) of entries held back until their predecessors come."""
        return self._waiting.keys()

    def recent(self, n: int) -> list[LedgerEntry]:
        """The last n rounds and challenges in the ledger's order, newest first (checkpoints left out)."""
        found: list[LedgerEntry] = []
        for _, gateway, seq in reversed(self._order):
            if len(found) >= n:
                break
            entry = self._entries[(gateway, seq)]
            if entry.type != "checkpoint":
                found.append(entry)
        return found

    def since(
        self, have: Mapping[str, int], limit: int, tips: Mapping[str, str] | None = None
    ) -> list[LedgerEntry]:
        """Up to `limit` entries that a ledger holding `have` (as `heads`) lacks, each chain in order. Where
        `tips` (as `tips`) says its last entry of a chain is not the one held here at that seq, the one held
        here comes first: the two are a fork, which the other ledger can then prove."""
        missing = []
        for gateway, tip in sorted(self._tips.items()):
            start = max(0, int(have.get(gateway, 0)))
            theirs = (tips or {}).get(gateway)
            if (
                theirs is not None
                and 0 < start <= tip.seq + 1
                and self._entries[(gateway, start - 1)].digest != theirs
            ):
                start -= 1
            for seq in range(start, tip.seq + 1):
                if len(missing) == limit:
                    return missing
                missing.append(self._entries[(gateway, seq)])
        return missing

    def stored(self) -> Iterator[dict[str, Any]]:
        """Everything as it is on disk (not as held in memory), what `verify` checks: every entry, each
        chain in order, then each fork (`{"fork": [entry, entry]}`), then each final checkpoint
        (`{"final": record}`)."""
        if self._db is None:
            yield from (e.to_wire() for _, e in sorted(self._entries.items()))
            yield from ({"fork": f.to_wire()} for _, f in sorted(self._forks.items()))
            yield from ({"final": c.to_record()} for c in self._finals)
            return
        for (wire,) in self._db.execute("SELECT wire FROM entries ORDER BY gateway, seq"):
            yield json.loads(wire)
        for first, second in self._db.execute("SELECT first, second FROM forks ORDER BY gateway"):
            yield {"fork": [json.loads(first), json.loads(second)]}
        for (record,) in self._db.execute("SELECT record FROM finals ORDER BY time"):
            yield {"final": json.loads(record)}

    def checkpoint(self, time: int) -> Checkpoint:
        """The checkpoint of `time` as this ledger would sign it: how many entries of each chain it holds
        dated before then."""
        counts = {g: bisect.bisect_left(ats, time) for g, ats in sorted(self._ats.items())}
        return Checkpoint(time, {g: n for g, n in counts.items() if n})

    def due_checkpoint(self, signer: str, now: float) -> Checkpoint | None:
        """The checkpoint `signer` is to sign at `now`: that of the last epoch ended by then, unless its
        chain signed that epoch already, a checkpoint as late is final, or nothing is dated before it."""
        self._refresh()
        time = epoch_before(now)
        closed = self._finals[-1].time if self._finals else -1
        checkpoint = self.checkpoint(time)
        return (
            None if time <= max(closed, self._signed.get(signer, -1)) or not checkpoint.heads else checkpoint
        )

    # ---- changing

    def add(self, entry: LedgerEntry | Fork) -> Added:
        return self.add_many([entry])[0]

    def add_many(
        self, items: Iterable[LedgerEntry | Fork], rejected: list[BadEntry] | None = None
    ) -> list[Added]:
        """Take checked entries (`entry.from_wire`) and forks (`fork.fork_from_wire`) in any order, storing
        what is new in one transaction. An entry that breaks its chain raises BadEntry (what came before it
        is kept), or with `rejected` given is put there and the rest taken."""
        results: list[Added] = []
        batch = _Batch()
        try:
            for item in items:
                try:
                    results.append(
                        self._cut(item, batch) if isinstance(item, Fork) else self._take(item, batch)
                    )
                except BadEntry as exc:
                    if rejected is None:
                        raise
                    rejected.append(exc)
        finally:
            self._commit(batch)
        return results

    def append(self, identity: Identity, type: EntryType, record: dict[str, Any]) -> LedgerEntry:
        """Sign and add this node's next entry. It is dated no earlier than the latest epoch any chain has
        signed a checkpoint of (one up to the clock skew ahead of this node's clock): a node whose clock
        is behind does not write into a past others are closing."""
        tip = self.tip(identity.peer_id)
        now = self.clock()
        signed = self._epochs[: bisect.bisect_right(self._epochs, now + DEFAULT_MAX_SKEW_S)]
        at = max(now, tip.at if tip else 0.0, signed[-1] if signed else 0.0)
        seq, prev = (tip.seq + 1, tip.digest) if tip else (0, GENESIS)
        entry = make(identity, seq, prev, at, type, record, self.rules_digest)
        self.add(entry)
        return entry

    def adopt(self, finals: Iterable[Checkpoint]) -> bool:
        """Take a peer's final checkpoints, if this ledger has none of its own: a new node's, which can't
        tell a backdated past from the real one by the entries alone (`consensus.checkpoint`). They are
        checked as the entries come, like any final checkpoint held, and dropped if they don't hold.
        Whether they were taken."""
        self._refresh()
        finals = list(finals)
        if self._finals or not finals:
            return False
        self._finals, self._finals_changed, self._dirty = finals, True, True
        self._commit(_Batch())
        return True

    def _take(self, entry: LedgerEntry, batch: _Batch, *, graded: bool = False) -> Added:
        """Take one entry; `graded`: its challenge was graded against the bank before (on disk)."""
        gateway, seq = entry.gateway, entry.seq
        fork = self._forks.get(gateway)
        if fork is not None and seq >= fork.seq:
            if entry.digest in fork.digests:
                return Added.KNOWN
            raise BadEntry(
                f"entry {seq} of {gateway}: its chain forked at entry {fork.seq} and takes no more"
            )
        known = self._entries.get((gateway, seq)) or self._waiting.get((gateway, seq))
        if known is not None:
            if known.digest == entry.digest:
                return Added.KNOWN
            return self._cut(Fork.between(known, entry), batch)
        if entry.rules != self.rules_digest:
            raise BadEntry(
                f"entry {seq} of {gateway} was made under other reputation rules ({entry.rules[:12]})"
            )
        if entry.type == "challenge" and not graded:
            grade_challenge(entry, self.bank)
        if entry.at > self.clock() + self.max_skew_s:
            raise BadEntry(f"entry {seq} of {gateway} is dated {entry.at - self.clock():.0f} s in the future")
        self._check_allowance(entry)
        tip = self._tips.get(gateway)
        expected = tip.seq + 1 if tip else 0
        if seq > expected:
            now = self.clock()
            self._waiting.expire(now)
            self._waiting.hold(entry, now)
            return Added.WAITING
        self._link(entry, batch)
        seq += 1
        while (follower := self._waiting.take((gateway, seq))) is not None:
            try:
                self._link(follower, batch)
            except BadEntry as exc:
                log.warning("dropped a waiting entry: %s", exc)
                break
            seq += 1
        return Added.NEW

    def _check_allowance(self, entry: LedgerEntry) -> None:
        """Refuse an entry past its chain's allowance: MAX_OPEN_ENTRIES beyond what the last final
        checkpoint covers of it, or in all for a writer that had no say there. A checkpoint of an epoch
        after that one and after its chain's last is never refused, so the past can still be closed when
        finality stalls. The allowance depends on the chain and the final checkpoints alone, which every
        node comes to share; a node still short of what the last one covers counts every writer as
        having had no say, so it takes less, never more, than the others, and takes the rest from its
        next pull."""
        if not self.bounded:
            return
        gateway, seq = entry.gateway, entry.seq
        latest = self._finals[-1] if self._finals else None
        covered = latest.covered(gateway, self._cut_at(gateway)) if latest is not None else 0
        if seq < max(covered, MAX_OPEN_ENTRIES):
            return
        if entry.type == "checkpoint" and Checkpoint.of(entry).time > max(
            latest.time if latest is not None else -1, self._signed.get(gateway, -1)
        ):
            return
        if seq < covered + MAX_OPEN_ENTRIES and self._heard(gateway):
            return
        raise BadEntry(
            f"entry {seq} of {gateway}: its chain holds {MAX_OPEN_ENTRIES} entries beyond the last final "
            "checkpoint already" + ("" if self._heard(gateway) else ", and its writer had no say there")
        )

    def _heard(self, gateway: str) -> bool:
        """Whether the gateway had a say at the last final checkpoint, as far as this ledger can tell (yes
        while nothing is final)."""
        if not self._finals:
            return True
        return gateway in self._final_say and self.holds(self._finals[-1])

    def _link(self, entry: LedgerEntry, batch: _Batch) -> None:
        """Add the entry that follows its gateway's tip, if it really does."""
        tip = self._tips.get(entry.gateway)
        if entry.prev != (tip.digest if tip else GENESIS):
            raise BadEntry(
                f"entry {entry.seq} of {entry.gateway} does not follow the one before it: the chain is broken"
            )
        if tip is not None and entry.at < tip.at:
            raise BadEntry(f"entry {entry.seq} of {entry.gateway} is dated before the entry it follows")
        self._insert(entry)
        batch.new.append(entry)

    def _insert(self, entry: LedgerEntry) -> None:
        gateway = entry.gateway
        # At the end of the order, applied at once; anywhere else, everything after it is replayed.
        last = max((*self._order[-1:], *self._bans()), default=None)
        at_end = not self._dirty and gateway not in self._forks and (last is None or entry.key > last)
        if at_end and last is not None:
            self._cross(last[0], entry.at)
        self._entries[(gateway, entry.seq)] = entry
        self._tips[gateway] = entry
        self._ats.setdefault(gateway, []).append(entry.at)
        epoch = self._sign(entry) if entry.type == "checkpoint" else None
        if not at_end:
            bisect.insort(self._order, entry.key)
            self._dirty = True
            return
        self._order.append(entry.key)
        self._apply(self._book, entry)
        self._entries_head = chain_head(self._entries_head, entry.digest)
        if epoch is not None:
            self._settle_at_once(epoch)

    def _sign(self, entry: LedgerEntry) -> int | None:
        """Count a checkpoint entry as its signer's signature, if its epoch is later than every epoch its
        chain signed before; the epoch it counts for."""
        checkpoint = Checkpoint.of(entry)
        if checkpoint.time <= self._signed.get(entry.gateway, -1):
            return None
        self._signed[entry.gateway] = checkpoint.time
        self._records.setdefault(checkpoint.digest, checkpoint)
        if checkpoint.time not in self._signatures:
            bisect.insort(self._epochs, checkpoint.time)
        self._signatures.setdefault(checkpoint.time, {}).setdefault(checkpoint.digest, set()).add(
            entry.gateway
        )
        return checkpoint.time

    def _cross(self, last: float, at: float) -> None:
        """Keep the say at the end of each recent epoch between the last entry applied and one dated `at`."""
        closed = self._finals[-1].time if self._finals else -1
        first = max(
            epoch_before(last) + CHECKPOINT_EVERY_S,
            epoch_before(at) - (RECENT_EPOCHS - 1) * CHECKPOINT_EVERY_S,
        )
        ends = [t for t in range(first, epoch_before(at) + 1, CHECKPOINT_EVERY_S) if t > closed]
        if not ends:
            return
        now = _Say(say(self._book, self.rules), self.heads())
        for t in ends:
            self._say_at[t] = now
        for t in sorted(self._say_at)[:-RECENT_EPOCHS]:
            del self._say_at[t]

    def _settle_at_once(self, epoch: int) -> None:
        """Settle an epoch as its signatures come, where its checkpoints cover exactly what was held at its
        end; anything else is left to the replay."""
        latest = self._finals[-1] if self._finals else None
        if latest is not None and epoch <= latest.time:
            return  # a closed past
        at_end = self._say_at.get(epoch)
        for digest, signers in sorted(self._signatures[epoch].items()):
            checkpoint = self._records[digest]
            if at_end is None or dict(checkpoint.heads) != at_end.counts:
                if at_end is not None and latest is not None and not any(at_end.say.get(s) for s in signers):
                    continue  # signed by nobody with a say: it can't be final
                self._dirty = True
                return
            if checkpoint.extends(latest) and carries(signers, at_end.say):
                self._finals.append(checkpoint)
                self._final_say = at_end.say
                self._finals_head = chain_head(self._finals_head, checkpoint.digest)
                self._finals_changed = True
                for t in [t for t in self._say_at if t <= epoch]:
                    del self._say_at[t]
                return

    def _cut(self, fork: Fork, batch: _Batch) -> Added:
        """Take the proof that a gateway forked its chain: the chain ends before the fork, nothing of it
        waits any more, and the replay bans the gateway. A fork lower down replaces one higher up."""
        gateway, seq = fork.gateway, fork.seq
        held = self._forks.get(gateway)
        if held is not None and held.seq <= seq:
            return Added.KNOWN
        log.warning("%s forked its chain at entry %d: its say is gone", gateway, seq)
        self._forks[gateway] = fork
        self._order = [k for k in self._order if k[1] != gateway or k[2] < seq]
        for s in range(seq, len(self._ats.get(gateway, ()))):
            del self._entries[(gateway, s)]
        kept = self._ats.pop(gateway, [])[:seq]
        if kept:
            self._ats[gateway] = kept
            self._tips[gateway] = self._entries[(gateway, len(kept) - 1)]
        else:
            self._tips.pop(gateway, None)
        self._waiting.drop_chain(gateway, seq)
        batch.forks.append(fork)
        self._dirty = True
        return Added.FORK

    def _cut_at(self, gateway: str) -> int | None:
        fork = self._forks.get(gateway)
        return None if fork is None else fork.seq

    def _bans(self) -> list[Key]:
        """Where each forker is banned in the order: right after the last entry it has before the fork."""
        bans = []
        for gateway, fork in self._forks.items():
            tip = self._tips.get(gateway)
            bans.append((tip.at if tip is not None else 0.0, gateway, fork.seq))
        return sorted(bans)

    def _apply(self, book: Standing, entry: LedgerEntry) -> None:
        if entry.type == "round":
            apply_round_evidence(book, entry.gateway, entry.round_evidence(), self.rules, entry.at)
        elif entry.type == "challenge":
            apply_challenge(book, entry.challenge_outcome(self.bank), self.rules, entry.at)

    def _play(self, book: Standing, key: Key, void: set[tuple[str, int]]) -> None:
        """One step of the order: a forker banned, or an entry applied unless void."""
        gateway, seq = key[1], key[2]
        if self._cut_at(gateway) == seq:
            book.ban(gateway)
        elif (gateway, seq) not in void:
            self._apply(book, self._entries[(gateway, seq)])

    # ---- the replay

    def _refresh(self) -> None:
        if not self._dirty:
            return
        self._index_signatures()
        while not self._replay():
            pass
        self._dirty = False

    def _index_signatures(self) -> None:
        self._signatures, self._records, self._signed, self._epochs = {}, {}, {}, []
        for gateway, ats in self._ats.items():
            for seq in range(len(ats)):
                entry = self._entries[(gateway, seq)]
                if entry.type == "checkpoint":
                    self._sign(entry)

    def _replay(self) -> bool:
        """Apply every entry in order to a new book, settling the epochs on the way: the final checkpoints
        held are checked again, and the later epochs evaluated. False, and the finals cut short, if a final
        checkpoint no longer holds (a fork took a signer's say): the replay is to start again."""
        finals, kept = self._finals, []
        void = self._voids(finals)
        closed = finals[-1].time if finals else -1
        last = epoch_before(self._order[-1][0]) if self._order else None
        recent = (
            set()
            if last is None
            else set(range(last - (RECENT_EPOCHS - 1) * CHECKPOINT_EVERY_S, last + 1, CHECKPOINT_EVERY_S))
        )
        stops = sorted({c.time for c in finals} | {t for t in self._signatures if t > closed} | recent)
        book, head, say_at, final_say = Standing(), _EMPTY_HEAD, {}, {}
        # Each epoch's end comes before the entries dated at it: those dated before it are all applied.
        for key in heapq.merge(self._order, self._bans(), [(float(t), "", -1) for t in stops]):
            if key[2] != -1:
                self._play(book, key, void)
                if self._cut_at(key[1]) != key[2]:
                    head = chain_head(head, self._entries[(key[1], key[2])].digest)
                continue
            t = int(key[0])
            if len(kept) < len(finals):
                if finals[len(kept)].time == t:
                    if not self._holds_again(finals[len(kept)], t, book, kept[-1] if kept else None):
                        self._finals, self._finals_changed = finals[: len(kept)], True
                        return False
                    kept.append(finals[len(kept)])
            elif t in self._signatures and t > (kept[-1].time if kept else -1):
                book = self._evaluate(t, book, kept, void)
            if kept and kept[-1].time == t:
                final_say = say(book, self.rules)
            if t in recent and t > (kept[-1].time if kept else -1):
                say_at[t] = _Say(say(book, self.rules), dict(self.checkpoint(t).heads))
        self._finals_changed |= len(kept) < len(finals)  # two held for one time: the second never holds
        self._finals, self._void, self._book, self._entries_head, self._say_at = (
            kept,
            void,
            book,
            head,
            say_at,
        )
        self._final_say = final_say
        self._finals_head = _EMPTY_HEAD
        for checkpoint in kept:
            self._finals_head = chain_head(self._finals_head, checkpoint.digest)
        return True

    def _holds_again(self, checkpoint: Checkpoint, t: int, book: Standing, before: Checkpoint | None) -> bool:
        """Whether a final checkpoint still is: the book at its time is the world it covers (its voids
        applied), so its signers must still carry it there. One whose entries are not all held yet is
        taken as final until they come."""
        if not self.holds(checkpoint):
            return True
        signers = self._signatures.get(t, {}).get(checkpoint.digest, set())
        return (
            self._uncovered(checkpoint, t) is not None
            and checkpoint.extends(before)
            and carries(signers, say(book, self.rules))
        )

    def _evaluate(
        self, t: int, book: Standing, kept: list[Checkpoint], void: set[tuple[str, int]]
    ) -> Standing:
        """Settle epoch `t`: the first of its checkpoints (by digest) that extends the last final one and
        that its signers carry in the world it covers becomes final. Returns the book at `t`, which leaves
        out what that checkpoint voids."""
        latest = kept[-1] if kept else None
        now = say(book, self.rules)
        for digest, signers in sorted(self._signatures[t].items()):
            checkpoint = self._records[digest]
            if not checkpoint.extends(latest) or not self.holds(checkpoint):
                continue
            extra = self._uncovered(checkpoint, t)
            if extra is None:
                continue
            extra -= void
            if not extra:
                world = book
            elif latest is not None and not any(now.get(s) for s in signers):
                continue  # signed by nobody with a say: it can't be final
            else:
                world = self._book_before(t, void | extra)
            if carries(signers, say(world, self.rules)):
                kept.append(checkpoint)
                self._finals_changed = True
                void |= extra
                return world
        return book

    def _uncovered(self, checkpoint: Checkpoint, t: int) -> set[tuple[str, int]] | None:
        """The entries held dated before `t` that the checkpoint does not cover; None if it covers one dated
        at `t` or later, which no honest signer does."""
        extra = set()
        for gateway, ats in self._ats.items():
            covered, before = checkpoint.covered(gateway, self._cut_at(gateway)), bisect.bisect_left(ats, t)
            if covered > before:
                return None
            extra.update((gateway, seq) for seq in range(covered, before))
        return extra

    def _voids(self, finals: list[Checkpoint]) -> set[tuple[str, int]]:
        void: set[tuple[str, int]] = set()
        for checkpoint in finals:
            for gateway, ats in self._ats.items():
                covered = checkpoint.covered(gateway, self._cut_at(gateway))
                void.update(
                    (gateway, seq) for seq in range(covered, bisect.bisect_left(ats, checkpoint.time))
                )
        return void

    def _book_before(self, t: int, void: set[tuple[str, int]]) -> Standing:
        book = Standing()
        for key in heapq.merge(self._order, self._bans()):
            if key[0] >= t:
                break
            self._play(book, key, void)
        return book

    # ---- on disk

    def _commit(self, batch: _Batch) -> None:
        """Settle what the batch changed and store it; if the disk refuses, memory goes back to the disk."""
        self._refresh()
        if self._db is None:
            self._finals_changed = False
            return
        new = [e for e in batch.new if self._entries.get((e.gateway, e.seq)) is e]
        if not (new or batch.forks or self._finals_changed):
            return
        try:
            with self._transaction() as db:
                db.executemany(
                    "INSERT INTO entries (gateway, seq, digest, wire) VALUES (?, ?, ?, ?)",
                    [(e.gateway, e.seq, e.digest, _json(e.to_wire())) for e in new],
                )
                for fork in batch.forks:
                    db.execute("DELETE FROM entries WHERE gateway = ? AND seq >= ?", (fork.gateway, fork.seq))
                    db.execute(
                        "INSERT OR REPLACE INTO forks (gateway, seq, first, second) VALUES (?, ?, ?, ?)",
                        (fork.gateway, fork.seq, *(_json(w) for w in fork.to_wire())),
                    )
                self._store_verified(db, {e.gateway for e in new} | {f.gateway for f in batch.forks})
                if self._finals_changed:
                    db.execute("DELETE FROM finals")
                    db.executemany(
                        "INSERT INTO finals (time, record) VALUES (?, ?)",
                        [(c.time, _json(c.to_record())) for c in self._finals],
                    )
        except sqlite3.Error:
            # Not on disk, so not held either: memory goes back to what the disk says.
            self._reset([])
            self._load()
            raise
        self._finals_changed = False

    def _transaction(self) -> _Transaction:
        assert self._db is not None
        return _Transaction(self._db)

    def _store_verified(self, db: sqlite3.Connection, gateways: Iterable[str]) -> None:
        """Note that each of these chains is verified as far as it is held: everything held was."""
        for gateway in gateways:
            tip = self._tips.get(gateway)
            if tip is None:
                db.execute("DELETE FROM verified WHERE gateway = ?", (gateway,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO verified (gateway, count, tip) VALUES (?, ?, ?)",
                    (gateway, tip.seq + 1, tip.digest),
                )

    def _verified_prefix(self) -> dict[str, tuple[int, str]]:
        """Per chain, how many entries on disk were verified and the digest of the last; none if they were
        verified under other rules."""
        assert self._db is not None
        rules = self._db.execute("SELECT value FROM meta WHERE key = 'verified_rules'").fetchone()
        if rules is None or rules[0] != self.rules_digest:
            return {}
        return {g: (int(n), str(tip)) for g, n, tip in self._db.execute("SELECT * FROM verified")}

    def _load(self) -> None:
        assert self._db is not None
        rows = self._db.execute("SELECT gateway, seq, wire FROM entries ORDER BY gateway, seq").fetchall()
        prefix = self._verified_prefix()
        if prefix and not self._load_rows(rows, prefix):
            log.warning("the ledger's verified prefix does not match what is on disk: verifying it all again")
            self._reset([])
            prefix = {}
        if not prefix:
            self._load_rows(rows, {})
        unused = [(gw, seq) for gw, seq, _ in rows if (gw, seq) not in self._entries]
        # Set aside, not deleted, so an operator can look; the chain goes on from its last good entry.
        with self._transaction() as db:
            if unused:
                db.execute("CREATE TABLE IF NOT EXISTS set_aside AS SELECT * FROM entries WHERE 0")
            for key in unused:
                db.execute("INSERT INTO set_aside SELECT * FROM entries WHERE gateway = ? AND seq = ?", key)
                db.execute("DELETE FROM entries WHERE gateway = ? AND seq = ?", key)
            if self._finals_changed:
                db.execute("DELETE FROM finals")
                db.executemany(
                    "INSERT INTO finals (time, record) VALUES (?, ?)",
                    [(c.time, _json(c.to_record())) for c in self._finals],
                )
            db.execute("DELETE FROM verified")
            self._store_verified(db, list(self._tips))
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('verified_rules', ?)", (self.rules_digest,)
            )
        self._finals_changed = False
        for failure in self.load_failures:
            log.error("ledger on disk: %s (set aside)", failure)
        log.info("ledger: %d entries, %d of them verified now", len(self._entries), self.checked_on_load)

    def _load_rows(self, rows: list[tuple[str, int, str]], prefix: Mapping[str, tuple[int, str]]) -> bool:
        """Take what is on disk: each chain's `prefix` (how many, the last one's digest) parsed as verified
        before, the rest verified. Whether every prefix ended on its digest."""
        assert self._db is not None
        for gateway, seq, first, second in self._db.execute("SELECT gateway, seq, first, second FROM forks"):
            try:
                fork = fork_from_wire([json.loads(first), json.loads(second)])
                if (fork.gateway, fork.seq) != (gateway, seq):
                    raise BadEntry(f"stored as the fork of {gateway} at {seq}")
            except (BadEntry, ValueError) as exc:
                self.load_failures.append(f"the fork of {gateway}: {exc}")
                continue
            self._forks[gateway] = fork
        for (record,) in self._db.execute("SELECT record FROM finals ORDER BY time"):
            self._finals.append(Checkpoint.from_record(json.loads(record)))
        batch = _Batch()
        self._dirty = True  # applied once, by the replay, not also one by one as they come
        bounded, self.bounded = self.bounded, False
        for gateway, seq, wire in rows:
            verified = seq < prefix.get(gateway, (0, ""))[0]
            try:
                entry = _verified_before(json.loads(wire)) if verified else from_wire(json.loads(wire))
                self.checked_on_load += not verified
                if (entry.gateway, entry.seq) != (gateway, seq):
                    raise BadEntry(f"stored as entry {seq} of {gateway}")
            except (BadEntry, KeyError, TypeError, ValueError) as exc:
                self.load_failures.append(f"entry {seq} of {gateway}: {exc}")
                continue
            try:
                self._take(entry, batch, graded=verified)
            except BadEntry as exc:
                self.load_failures.append(str(exc))
        self.bounded = bounded
        self._waiting.clear()
        self._refresh()
        return all(
            (held := self._entries.get((gateway, count - 1))) is not None and held.digest == tip
            for gateway, (count, tip) in prefix.items()
        )


def _verified_before(wire: Any) -> LedgerEntry:
    """An entry as this ledger stored it once verified: parsed, its signatures not checked again (the
    digests its chain links by, ending on the one noted, are)."""
    return LedgerEntry(
        Statement(str(wire["kind"]), str(wire["signer"]), dict(wire["body"]), str(wire["signature"]))
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (sqlite3's own context manager only commits)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self.db.execute("ROLLBACK" if kind else "COMMIT")


def verify(
    wires: Iterable[Any], rules: Rules = Rules(), bank: ChallengeBank | None = None
) -> tuple[Ledger, list[str]]:
    """Check a whole ledger from what it stores (`Ledger.stored`), under `rules` and the challenge bank
    they name: the ledger it makes, and every failure (a bad signature or piece of evidence, a challenge
    question not in the bank or graded otherwise, a broken chain, an entry left without its predecessor,
    a fork that proves nothing, a checkpoint held as final that is not)."""
    items: list[LedgerEntry | Fork] = []
    claimed: list[Checkpoint] = []
    failures = []
    for i, wire in enumerate(wires):
        try:
            if isinstance(wire, Mapping) and "fork" in wire:
                items.append(fork_from_wire(wire["fork"]))
            elif isinstance(wire, Mapping) and "final" in wire:
                claimed.append(Checkpoint.from_record(wire["final"]))
            else:
                items.append(from_wire(wire))
        except (BadEntry, KeyError, TypeError, ValueError, AttributeError) as exc:
            failures.append(f"entry #{i}: {exc}")
    ledger = Ledger(rules=rules, bank=bank, max_skew_s=float("inf"), finals=claimed, bounded=False)
    rejected: list[BadEntry] = []
    ledger.add_many(items, rejected)
    failures += [str(exc) for exc in rejected]
    failures += [f"entry {seq} of {gw} has no entry {seq - 1} before it" for gw, seq in ledger.waiting()]
    final = {c.digest for c in ledger.finals}
    for checkpoint in claimed:
        if checkpoint.digest not in final:
            failures.append(f"the checkpoint of {checkpoint.time} is held as final, and is not")
        elif not ledger.holds(checkpoint):
            failures.append(f"the final checkpoint of {checkpoint.time} covers entries not held")
    return ledger, failures
