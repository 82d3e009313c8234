"""Every peer's say, domain by domain: one book of scores per domain, and the graded challenge answers
that decide who holds a say there (the test in `Rules.passes`).

Carefully mutable, like the books: a method checks before it changes, and the
same entries applied in the same order give the same standing on every node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from core.records import DOMAINS, Domain
from reputation.book import ReputationBook
from reputation.rules import Role, Rules

# Writers kept per (peer, domain): past this the one with the least evidence left is forgotten.
MAX_WRITERS = 64
# Evidence of a writer faded below this many answers is forgotten.
FORGOTTEN = 0.01


@dataclass(frozen=True, slots=True)
class Graded:
    """One graded challenge answer as the test counts it: who wrote it up, right or not, and its bar (the
    better of a blind guess's and a copycat's odds on its question)."""

    writer: str
    correct: bool
    bar: float


@dataclass(frozen=True, slots=True)
class Tally:
    """A peer's evidence in a domain as the test reads it: right of asked (faded, and each writer's share
    capped, so fractional), and the mean bar of those answers."""

    right: float
    asked: float
    bar: float


class Standing:
    def __init__(self) -> None:
        self._books: dict[Domain, ReputationBook] = {d: ReputationBook() for d in DOMAINS}
        # (peer, domain) -> writer -> [right, asked, sum of bars], faded by time (Rules.say_half_life_s)
        self._evidence: dict[tuple[str, Domain], dict[str, list[float]]] = {}
        self._faded_to: dict[tuple[str, Domain], float] = {}  # the entry time each evidence is faded to
        self._proven: set[tuple[str, Domain]] = set()  # who passed the test, and has not failed it since
        self._banned: set[str] = set()

    # Reading

    def book(self, domain: Domain) -> ReputationBook:
        return self._books[domain]

    def banned(self, peer: str) -> bool:
        return peer in self._banned

    def peers(self) -> tuple[str, ...]:
        known = {p for book in self._books.values() for p in book.peers()} | {p for p, _ in self._evidence}
        return tuple(sorted(known))

    def tally(self, peer: str, domain: Domain, rules: Rules) -> Tally:
        """The evidence, each writer's part scaled down to at most `say_per_writer` answers."""
        right = asked = bars = 0.0
        for r, n, b in self._evidence.get((peer, domain), {}).values():
            scale = min(1.0, rules.say_per_writer / n) if n > 0 else 0.0
            right, asked, bars = right + r * scale, asked + n * scale, bars + b * scale
        return Tally(right, asked, bars / asked if asked else 0.0)

    def proven(self, peer: str, domain: Domain) -> bool:
        """Whether the peer's challenge answers in the domain passed the test and have not failed it since."""
        return (peer, domain) in self._proven

    def holds(self, peer: str, domain: Domain, rules: Rules, role: Role = "answer") -> bool:
        """Whether the peer holds a say of its own in the domain: it passes the test and has the free
        reputation there to stake."""
        return self.proven(peer, domain) and self._books[domain].eligible(peer, role, rules)

    def holders(self, domain: Domain, rules: Rules) -> tuple[str, ...]:
        return tuple(sorted(p for p, d in self._proven if d == domain and self.holds(p, d, rules)))

    def open(self, domain: Domain, rules: Rules) -> bool:
        """Whether the domain runs under bootstrap rules: fewer than `min_holders` peers hold a say there."""
        return len(self.holders(domain, rules)) < rules.min_holders

    def may_challenge(self, writer: str, peer: str, domain: Domain, rules: Rules) -> bool:
        """Whether a challenge of `peer` in the domain written by `writer` counts: never on oneself nor
        from a banned writer; from anyone while the domain is open, else from its holders."""
        if writer == peer or self.banned(writer):
            return False
        return self.open(domain, rules) or self.holds(writer, domain, rules)

    def challengers(
        self, peer: str, domain: Domain, candidates: Iterable[str], at: float, rules: Rules
    ) -> tuple[str, ...]:
        """Who challenges `peer` in the domain at time `at`: of the `candidates` whose challenge would
        count, the `challengers` first by sha256(epoch, peer, candidate), a draw nobody chooses."""
        epoch = int(at // rules.challenger_epoch_s)

        def draw(candidate: str) -> bytes:
            return hashlib.sha256(f"{epoch}\0{peer}\0{candidate}".encode()).digest()

        able = [c for c in set(candidates) if self.may_challenge(c, peer, domain, rules)]
        return tuple(sorted(able, key=draw)[: rules.challengers])

    # What checkpoints weigh (consensus.checkpoint.say): a say anywhere, its weight the scores held.

    def eligible(self, peer: str, role: Role, rules: Rules) -> bool:
        return any(self.holds(peer, d, rules, role) for d in DOMAINS)

    def score(self, peer: str) -> float:
        return sum(book.score(peer) for book in self._books.values())

    def bootstrapping(self, rules: Rules) -> bool:
        """Whether nobody holds a say in any domain: the network's first moments."""
        return not any(self.holders(d, rules) for d in DOMAINS)

    # Changing

    def count(self, peer: str, domain: Domain, graded: Graded, at: float, rules: Rules) -> None:
        """Count one graded answer in the peer's evidence (what was there faded to `at` first; a time
        earlier than the last does not fade), then run the test:
        a peer not proven gains its say by `Rules.gains`, one proven keeps it by `Rules.keeps`. A peer
        proven for the first time in the domain is granted the prior there."""
        if self.banned(peer):
            return
        key = (peer, domain)
        writers = self._evidence.setdefault(key, {})
        keep = 0.5 ** (max(0.0, at - self._faded_to.get(key, at)) / rules.say_half_life_s)
        self._faded_to[key] = max(at, self._faded_to.get(key, at))
        for counts in writers.values():
            counts[:] = [c * keep for c in counts]
        mine = writers.setdefault(graded.writer, [0.0, 0.0, 0.0])
        mine[0] += graded.correct
        mine[1] += 1
        mine[2] += graded.bar
        for writer in [w for w, c in writers.items() if c[1] < FORGOTTEN]:
            del writers[writer]
        while len(writers) > MAX_WRITERS:
            del writers[min(writers, key=lambda w: (writers[w][1], w))]
        t = self.tally(peer, domain, rules)
        if key in self._proven and not rules.keeps(t.right, t.asked, t.bar):
            self._proven.discard(key)
        elif key not in self._proven and rules.gains(t.right, t.asked, t.bar):
            self._proven.add(key)
            if peer not in self._books[domain].peers():
                self._books[domain].grant(peer, rules.prior, rules)

    def ban(self, peer: str) -> None:
        """A say taken for good in every domain (the peer forked its chain)."""
        for book in self._books.values():
            book.ban(peer)
        self._banned.add(peer)
        self._proven = {(p, d) for p, d in self._proven if p != peer}

    def decay(self, now: float, rules: Rules) -> None:
        for book in self._books.values():
            book.decay(now, rules)

    def is_closed(self, entry_id: str) -> bool:
        return any(book.is_closed(entry_id) for book in self._books.values())

    def close(self, entry_id: str) -> None:
        """Mark a challenge (or a round that moved nothing) as applied in every book."""
        for book in self._books.values():
            book.abort(entry_id)

    def snapshot(self) -> dict[str, Any]:
        """The whole standing as plain dicts, lists, strings and floats (JSON-ready)."""
        return {
            "books": {d: self._books[d].snapshot() for d in DOMAINS},
            "evidence": [
                {
                    "peer": p,
                    "domain": d,
                    "faded_to": self._faded_to.get((p, d)),
                    "writers": dict(sorted(w.items())),
                }
                for (p, d), w in sorted(self._evidence.items())
            ],
            "proven": sorted(self._proven),
            "banned": sorted(self._banned),
        }

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Standing)
            and self._evidence == other._evidence
            and self._faded_to == other._faded_to
            and self._proven == other._proven
            and self._banned == other._banned
            and all(self._books[d] == other._books[d] for d in DOMAINS)
        )

    __hash__ = None  # type: ignore[assignment]  # mutable
