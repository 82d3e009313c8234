"""The ledger: every verified entry, kept in SQLite, applied in one order to one reputation book.

Entries come from many gateways, in whatever order the network delivers them.
Each gateway's entries must form an unbroken chain: an entry is taken only
when it is the next link of its gateway's chain (`prev` is the digest of the
entry before it); one that arrives ahead of its predecessor waits, in memory,
for the predecessor to be pulled; one that breaks the chain, forks it, goes
back in time along it or comes from too far in the future is rejected. The
reputation book is then the entries applied in the order of `LedgerEntry.key`
(time, gateway, seq), the same on every node that holds the same entries
whatever order they came in; `head` digests them in that order, so two nodes
compare ledgers by comparing heads. An entry that lands before the end of
that order makes the book be recomputed, lazily, once per batch.

Stored in SQLite in WAL mode with full sync: an entry is on disk, in one
transaction with the rest of its batch, before it counts, so a node killed at
any point restarts with a prefix of every chain it had and pulls the rest.
Entries on disk are checked again when the ledger opens; one that fails, and
the rest of its chain after it, are moved to a `set_aside` table.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from core.identity import Identity
from core.storage import open_sqlite
from reputation.apply import apply_challenge, apply_round_evidence
from reputation.book import ReputationBook
from reputation.rules import Rules
from routing.datasets import ChallengeBank, challenge_bank
from routing.grading import GRADER_VERSION

from .entry import GENESIS, BadEntry, EntryType, LedgerEntry, from_wire, grade_challenge, make

log = logging.getLogger("swarm.ledger")

MAX_SKEW_S = 300.0  # how far ahead of this node's clock an entry's time may be
MAX_WAITING = 10_000  # entries held back for a missing predecessor, at most
_EMPTY_HEAD = hashlib.sha256(b"swarm-ledger-v1").hexdigest()


class Added(Enum):
    NEW = "new"
    KNOWN = "known"
    WAITING = "waiting"  # for an earlier entry of its chain


def chain_head(head: str, digest: str) -> str:
    return hashlib.sha256(f"{head}{digest}".encode()).hexdigest()


class Ledger:
    def __init__(
        self,
        path: Path | None = None,
        rules: Rules = Rules(),
        *,
        bank: ChallengeBank | None = None,
        clock: Callable[[], float] = time.time,
        max_skew_s: float = MAX_SKEW_S,
    ) -> None:
        """`bank` is the challenge questions the rules name (by default, the open network's)."""
        if rules.grader != GRADER_VERSION:
            raise ValueError(
                f"the rules grade challenges with grader {rules.grader}, this one is {GRADER_VERSION}"
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
        self._entries: dict[tuple[str, int], LedgerEntry] = {}
        self._tips: dict[str, LedgerEntry] = {}
        self._waiting: dict[tuple[str, int], LedgerEntry] = {}
        self._order: list[tuple[float, str, int]] = []
        self._book = ReputationBook()
        self._head = _EMPTY_HEAD
        self._dirty = False  # an entry landed before the end of the order: book and head are stale
        self.load_failures: list[str] = []
        self._db: sqlite3.Connection | None = None
        if path is not None:
            self._db = open_sqlite(path, synchronous="FULL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS entries (gateway TEXT NOT NULL, seq INTEGER NOT NULL, "
                "digest TEXT NOT NULL, wire TEXT NOT NULL, PRIMARY KEY (gateway, seq))"
            )
            self._load()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # ---- reading

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def book(self) -> ReputationBook:
        self._refresh()
        return self._book

    @property
    def head(self) -> str:
        """A digest of every entry in the order they are applied: equal on nodes holding the same entries."""
        self._refresh()
        return self._head

    def heads(self) -> dict[str, int]:
        """Per gateway, how many of its entries this ledger holds (the seq it needs next)."""
        return {gateway: tip.seq + 1 for gateway, tip in sorted(self._tips.items())}

    def tip(self, gateway: str) -> LedgerEntry | None:
        return self._tips.get(gateway)

    def waiting(self) -> list[tuple[str, int]]:
        """The (gateway, seq) of entries held back until their predecessors come."""
        return sorted(self._waiting)

    def recent(self, n: int) -> list[LedgerEntry]:
        """The last n entries in the ledger's order, newest first."""
        return [self._entries[(gw, seq)] for _, gw, seq in reversed(self._order[-n:])] if n > 0 else []

    def since(self, have: Mapping[str, int], limit: int) -> list[LedgerEntry]:
        """Up to `limit` entries that a ledger holding `have` (as `heads`) lacks, each chain in order."""
        missing = []
        for gateway, tip in sorted(self._tips.items()):
            for seq in range(max(0, int(have.get(gateway, 0))), tip.seq + 1):
                if len(missing) == limit:
                    return missing
                missing.append(self._entries[(gateway, seq)])
        return missing

    def stored(self) -> Iterator[dict[str, Any]]:
        """Every entry as it is on disk (not as held in memory), each chain in order: what `verify` checks."""
        if self._db is None:
            yield from (e.to_wire() for _, e in sorted(self._entries.items()))
            return
        for (wire,) in self._db.execute("SELECT wire FROM entries ORDER BY gateway, seq"):
            yield json.loads(wire)

    # ---- changing

    def add(self, entry: LedgerEntry) -> Added:
        return self.add_many([entry])[0]

    def add_many(self, entries: Iterable[LedgerEntry], rejected: list[BadEntry] | None = None) -> list[Added]:
        """Take checked entries (`entry.from_wire`) in any order, storing the new ones in one transaction.
        An entry that breaks its chain raises BadEntry (those before it are kept), or with `rejected`
        given is put there and the rest taken."""
        results: list[Added] = []
        new: list[LedgerEntry] = []
        try:
            for entry in entries:
                try:
                    results.append(self._take(entry, new))
                except BadEntry as exc:
                    if rejected is None:
                        raise
                    rejected.append(exc)
        finally:
            self._store(new)
        return results

    def append(self, identity: Identity, type: EntryType, record: dict[str, Any]) -> LedgerEntry:
        """Sign and add this node's next entry."""
        tip = self.tip(identity.peer_id)
        at = max(self.clock(), tip.at if tip else 0.0)
        seq, prev = (tip.seq + 1, tip.digest) if tip else (0, GENESIS)
        entry = make(identity, seq, prev, at, type, record, self.rules_digest)
        self.add(entry)
        return entry

    def _take(self, entry: LedgerEntry, new: list[LedgerEntry]) -> Added:
        gateway, seq = entry.gateway, entry.seq
        known = self._entries.get((gateway, seq))
        if known is not None:
            if known.digest != entry.digest:
                raise BadEntry(f"entry {seq} of {gateway} conflicts with the one held: a forked chain")
            return Added.KNOWN
        if entry.rules != self.rules_digest:
            raise BadEntry(
                f"entry {seq} of {gateway} was made under other reputation rules ({entry.rules[:12]})"
            )
        if entry.type == "challenge":
            grade_challenge(entry, self.bank)
        if entry.at > self.clock() + self.max_skew_s:
            raise BadEntry(f"entry {seq} of {gateway} is dated {entry.at - self.clock():.0f} s in the future")
        tip = self._tips.get(gateway)
        expected = tip.seq + 1 if tip else 0
        if seq > expected:
            if len(self._waiting) >= MAX_WAITING:
                raise BadEntry(
                    f"too many entries wait for their predecessors; dropped entry {seq} of {gateway}"
                )
            self._waiting[(gateway, seq)] = entry
            return Added.WAITING
        self._link(entry, new)
        seq += 1
        while (follower := self._waiting.pop((gateway, seq), None)) is not None:
            try:
                self._link(follower, new)
            except BadEntry as exc:
                log.warning("dropped a waiting entry: %s", exc)
                break
            seq += 1
        return Added.NEW

    def _link(self, entry: LedgerEntry, new: list[LedgerEntry]) -> None:
        """Add the entry that follows its gateway's tip, if it really does."""
        tip = self._tips.get(entry.gateway)
        if entry.prev != (tip.digest if tip else GENESIS):
            raise BadEntry(
                f"entry {entry.seq} of {entry.gateway} does not follow the one before it: the chain is broken"
            )
        if tip is not None and entry.at < tip.at:
            raise BadEntry(f"entry {entry.seq} of {entry.gateway} is dated before the entry it follows")
        self._insert(entry)
        new.append(entry)

    def _insert(self, entry: LedgerEntry) -> None:
        self._entries[(entry.gateway, entry.seq)] = entry
        self._tips[entry.gateway] = entry
        if self._dirty or (self._order and entry.key < self._order[-1]):
            bisect.insort(self._order, entry.key)
            self._dirty = True
            return
        self._order.append(entry.key)
        self._apply(entry)

    def _apply(self, entry: LedgerEntry) -> None:
        if entry.type == "round":
            apply_round_evidence(self._book, entry.gateway, entry.round_evidence(), self.rules, entry.at)
        else:
            apply_challenge(self._book, entry.challenge_outcome(self.bank), self.rules, entry.at)
        self._head = chain_head(self._head, entry.digest)

    def _refresh(self) -> None:
        if not self._dirty:
            return
        self._book, self._head = ReputationBook(), _EMPTY_HEAD
        for _, gateway, seq in self._order:
            self._apply(self._entries[(gateway, seq)])
        self._dirty = False

    def _store(self, entries: list[LedgerEntry]) -> None:
        if self._db is None or not entries:
            return
        rows = [(e.gateway, e.seq, e.digest, json.dumps(e.to_wire(), separators=(",", ":"))) for e in entries]
        try:
            with self._transaction() as db:
                db.executemany("INSERT INTO entries (gateway, seq, digest, wire) VALUES (?, ?, ?, ?)", rows)
        except sqlite3.Error:
            # Not on disk, so not held either: memory goes back to what the disk says.
            for e in entries:
                self._forget(e)
            raise

    def _forget(self, entry: LedgerEntry) -> None:
        del self._entries[(entry.gateway, entry.seq)]
        previous = self._entries.get((entry.gateway, entry.seq - 1))
        if previous is None:
            self._tips.pop(entry.gateway, None)
        else:
            self._tips[entry.gateway] = previous
        self._order.remove(entry.key)
        self._dirty = True

    def _transaction(self) -> _Transaction:
        assert self._db is not None
        return _Transaction(self._db)

    def _load(self) -> None:
        assert self._db is not None
        rows = self._db.execute("SELECT gateway, seq, wire FROM entries ORDER BY gateway, seq").fetchall()
        entries = []
        for gateway, seq, wire in rows:
            try:
                entry = from_wire(json.loads(wire))
                if (entry.gateway, entry.seq) != (gateway, seq):
                    raise BadEntry(f"stored as entry {seq} of {gateway}")
            except (BadEntry, ValueError) as exc:
                self.load_failures.append(f"entry {seq} of {gateway}: {exc}")
                continue
            entries.append(entry)
        new: list[LedgerEntry] = []
        for entry in entries:
            try:
                self._take(entry, new)
            except BadEntry as exc:
                self.load_failures.append(str(exc))
        self._waiting.clear()
        unused = [(gw, seq) for gw, seq, _ in rows if (gw, seq) not in self._entries]
        if unused:
            # Set aside, not deleted, so an operator can look; the chain goes on from its last good entry.
            with self._transaction() as db:
                db.execute("CREATE TABLE IF NOT EXISTS set_aside AS SELECT * FROM entries WHERE 0")
                for key in unused:
                    db.execute(
                        "INSERT INTO set_aside SELECT * FROM entries WHERE gateway = ? AND seq = ?", key
                    )
                    db.execute("DELETE FROM entries WHERE gateway = ? AND seq = ?", key)
        for failure in self.load_failures:
            log.error("ledger on disk: %s (set aside)", failure)


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
    """Check a whole ledger from its entries as plain data, under `rules` and the challenge bank they name:
    the ledger they make, and every failure (a bad signature or piece of evidence, a challenge question
    not in the bank or graded otherwise, a broken or forked chain, an entry left without its predecessor)."""
    ledger = Ledger(rules=rules, bank=bank, max_skew_s=float("inf"))
    failures = []
    for i, wire in enumerate(wires):
        try:
            ledger.add(from_wire(wire))
        except BadEntry as exc:
            failures.append(f"entry #{i}: {exc}")
    failures += [f"entry {seq} of {gw} has no entry {seq - 1} before it" for gw, seq in ledger.waiting()]
    return ledger, failures
