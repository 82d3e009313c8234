"""The account book: every peer's score, the stakes locked in open rounds, and the rounds closed.

Carefully mutable: each method checks everything before it changes anything,
so an exception leaves the book as it was. Crash safety rests on idempotence,
keyed by round: a stake is one per (round, peer, role), so locking it again
returns the same stake; a settled or aborted round is remembered as closed, so
closing it again does nothing. A node that restarts from a snapshot aborts the
rounds still open (`open_rounds`) and no stake is lost or counted twice.

A peer the book has never credited has score 0 (not the prior) and so no say:
`grant` is how a proof-of-capability step gives it its first reputation. Once
known, a score decays toward the prior like any other, so even one slashed to 0
slowly earns back a little say by staying out of trouble. Not so a banned peer
(`ban`: one the ledger proved to have forked its chain): its score stays 0.

Every loss is taken on some writer's word (the gateway of the round, the
challenger of the challenge), and the book counts what each writer has taken
from each peer, so that no writer takes more than its share (`allowance`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reputation.outcome import RoundOutcome
from reputation.rules import ROLES, Role, Rules

# Sums of float stakes may overshoot a score by rounding; invariants are checked to this relative slack.
SLACK = 1e-9


class Insufficient(Exception):
    """A peer's free reputation is below the minimum to answer or judge."""


class RoundClosed(Exception):
    """The round is already settled or aborted: it takes no more stakes."""


@dataclass(frozen=True, slots=True)
class Stake:
    round_id: str
    peer: str
    role: Role
    amount: float


class ReputationBook:
    def __init__(self) -> None:
        self._scores: dict[str, float] = {}
        self._stakes: dict[tuple[str, str, Role], Stake] = {}
        # Kept forever so a late duplicate settle is still a no-op; a persistence layer may prune old ids.
        self._closed: set[str] = set()
        self._as_of: float | None = None  # the time decay has been applied up to
        self._banned: set[str] = set()  # held at 0 for good: no credit, no decay toward the prior
        # (writer, peer) -> the shares of the peer's score the writer's entries took, counted as of when
        self._taken: dict[tuple[str, str], tuple[float, float]] = {}

    # Reading

    def score(self, peer: str) -> float:
        return self._scores.get(peer, 0.0)

    def locked(self, peer: str) -> float:
        return sum(s.amount for s in self._stakes.values() if s.peer == peer)

    def free(self, peer: str) -> float:
        return max(0.0, self.score(peer) - self.locked(peer))

    def peers(self) -> tuple[str, ...]:
        return tuple(sorted(self._scores))

    def stakes(self, round_id: str | None = None) -> tuple[Stake, ...]:
        return tuple(s for s in self._stakes.values() if round_id is None or s.round_id == round_id)

    def open_rounds(self) -> set[str]:
        return {s.round_id for s in self._stakes.values()}

    def is_closed(self, round_id: str) -> bool:
        return round_id in self._closed

    def banned(self, peer: str) -> bool:
        return peer in self._banned

    def eligible(self, peer: str, role: Role, rules: Rules) -> bool:
        """Whether the peer has enough free reputation to stake on a round in this role."""
        rules.stake_fraction(role)  # rejects an unknown role
        free = self.free(peer)
        return free > 0 and free >= rules.min_free

    def allowance(self, writer: str, peer: str, at: float, rules: Rules) -> float:
        """How much more of the peer's score the entries of `writer` may take at time `at`: what leaves
        the peer `1 - writer_loss_share` of the score the writer's counted takings began from."""
        counted = self._taken_share(writer, peer, at, rules)
        if counted >= rules.writer_loss_share:
            return 0.0
        return (rules.writer_loss_share - counted) / (1 - counted) * self.score(peer)

    def bootstrapping(self, rules: Rules) -> bool:
        """Whether no peer at all is eligible yet: the network's first moments, before anyone has proved
        anything, when the first challenges are accepted from anyone."""
        return not any(self.eligible(peer, "answer", rules) for peer in self._scores)

    # Changing

    def adjust(self, peer: str, delta: float, rules: Rules) -> float:
        """Move a peer's score by `delta` within the floor and ceiling, never below what it has locked;
        returns the change made. A loss for a peer the book does not know leaves it unknown, so failing
        a challenge does not start the decay toward the prior that would give a failed identity a say."""
        if peer in self._banned or (peer not in self._scores and delta <= 0):
            return 0.0
        score = self.score(peer)
        low = max(min(score, rules.floor), self.locked(peer))
        new = min(max(score + delta, low), max(score, rules.ceiling))
        self._scores[peer] = new
        return new - score

    def take(self, writer: str, peer: str, loss: float, at: float, rules: Rules) -> float:
        """Take up to `loss` from a peer's score on `writer`'s word, no more than the writer's allowance
        and as `adjust` bounds it; returns the change made (never positive)."""
        score = self.score(peer)
        change = self.adjust(peer, -min(loss, self.allowance(writer, peer, at, rules)), rules)
        self._count_taken(writer, peer, -change, score, at, rules)
        return change

    def grant(self, peer: str, amount: float, rules: Rules) -> float:
        """Credit a peer (proof of capability passed), up to the ceiling; returns its new score."""
        if not amount >= 0:
            raise ValueError(f"a grant must be non-negative, got {amount}")
        if peer in self._banned:
            return 0.0
        score = self.score(peer)
        self._scores[peer] = max(score, min(score + amount, rules.ceiling))
        return self._scores[peer]

    def ban(self, peer: str) -> None:
        """Take a peer's say for good (the ledger holds proof that it forked its chain): its score goes
        to 0 and stays there, so it is never eligible again, its votes weigh nothing, and what it writes
        counts for nothing."""
        if any(s.peer == peer for s in self._stakes.values()):
            raise ValueError(f"{peer} has stakes locked in an open round")
        self._banned.add(peer)
        self._scores[peer] = 0.0

    def lock(self, round_id: str, peer: str, role: Role, rules: Rules) -> Stake:
        """Lock the peer's stake to play `role` in the round: its stake fraction of its free reputation.
        Locking the same (round, peer, role) again returns the stake already locked."""
        existing = self._stakes.get((round_id, peer, role))
        if existing is not None:
            return existing
        if round_id in self._closed:
            raise RoundClosed(f"round {round_id!r} is already closed")
        if not self.eligible(peer, role, rules):
            raise Insufficient(
                f"{peer} has {self.free(peer):.6g} free reputation, needs {rules.min_free:.6g} to {role}"
            )
        stake = Stake(round_id, peer, role, rules.stake_fraction(role) * self.free(peer))
        self._stakes[(round_id, peer, role)] = stake
        return stake

    def abort(self, round_id: str) -> bool:
        """Release a round's stakes unchanged (a round that never finished) and close it; False, and no
        change, if it was already closed."""
        if round_id in self._closed:
            return False
        self._release(round_id)
        self._closed.add(round_id)
        return True

    def settle(self, outcome: RoundOutcome, rules: Rules, now: float, *, writer: str) -> dict[str, float]:
        """Decay to `now`, then release the round's stakes with their rewards and losses, and close it.
        Returns every staked peer's change of score; {} if the round was already closed. Peers in the
        outcome without a stake in the round are not touched, and a staked peer the outcome says
        nothing about gets its stake back unchanged. A loss is also bounded by what `writer`, the
        round's gateway, may still take from the peer."""
        if outcome.round_id in self._closed:
            return {}
        self.decay(now, rules)
        stakes = self.stakes(outcome.round_id)
        deltas: dict[str, float] = {}
        for peer in sorted({s.peer for s in stakes}):
            mine = [s for s in stakes if s.peer == peer]
            staked = sum(s.amount for s in mine)
            gain = -rules.fault_multiple(outcome.missed.get(peer, 0), outcome.malformed.get(peer, 0)) * staked
            for s in mine:
                gain += s.amount * self._multiple(s.role, peer, outcome, rules)
            # A stake is the most a round can cost, and the gateway's allowance the most it can take.
            gain = max(gain, -staked, -self.allowance(writer, peer, now, rules))
            score = self.score(peer)
            # Never below the floor (nor pushed up to it), never above the ceiling (nor pulled down to it).
            new = min(max(score + gain, min(score, rules.floor)), max(score, rules.ceiling))
            deltas[peer] = new - score
        for peer, delta in deltas.items():
            self._count_taken(writer, peer, -delta, self._scores[peer], now, rules)
            self._scores[peer] += delta
        self._release(outcome.round_id)
        self._closed.add(outcome.round_id)
        return deltas

    def decay(self, now: float, rules: Rules) -> None:
        """Move every known score toward the prior for the time since the last decay. The first call only
        sets the clock, and a `now` earlier than that does nothing (peers' clocks differ). A score never
        decays below what its peer has locked, so stakes stay covered."""
        if self._as_of is None or now <= self._as_of:
            self._as_of = now if self._as_of is None else self._as_of
            return
        elapsed = now - self._as_of
        for peer, score in self._scores.items():
            if peer not in self._banned:
                self._scores[peer] = max(rules.decayed(score, elapsed), self.locked(peer))
        self._as_of = now

    def _multiple(self, role: Role, peer: str, outcome: RoundOutcome, rules: Rules) -> float:
        if role == "answer":
            a = outcome.answerers.get(peer)
            return 0.0 if a is None else rules.answer_multiple(a.position, a.of, a.good_ratio)
        judge = outcome.judges.get(peer)
        return 0.0 if judge is None else rules.judge_multiple(judge.agreement)

    def _taken_share(self, writer: str, peer: str, at: float, rules: Rules) -> float:
        """The share of the peer's score the writer's entries have taken, as it still counts at `at`."""
        taken, since = self._taken.get((writer, peer), (0.0, at))
        return rules.writer_loss_counted(taken, at - since)

    def _count_taken(
        self, writer: str, peer: str, loss: float, score: float, at: float, rules: Rules
    ) -> None:
        """Count `loss`, taken from a peer whose score was `score`, against `writer`'s allowance: the
        share taken grows as 1 - (what is left of the score) / (where the takings began)."""
        if loss <= 0 or score <= 0:
            return
        counted = self._taken_share(writer, peer, at, rules)
        since = self._taken.get((writer, peer), (0.0, at))[1]
        self._taken[(writer, peer)] = (counted + (1 - counted) * loss / score, max(at, since))

    def _release(self, round_id: str) -> None:
        for key in [k for k in self._stakes if k[0] == round_id]:
            del self._stakes[key]

    # Persisting

    def snapshot(self) -> dict[str, Any]:
        """The whole book as plain dicts, lists, strings and floats (JSON-ready)."""
        return {
            "as_of": self._as_of,
            "scores": dict(sorted(self._scores.items())),
            "stakes": [
                {"round_id": s.round_id, "peer": s.peer, "role": s.role, "amount": s.amount}
                for s in sorted(self._stakes.values(), key=lambda s: (s.round_id, s.peer, s.role))
            ],
            "closed": sorted(self._closed),
            "banned": sorted(self._banned),
            "taken": [
                {"writer": writer, "peer": peer, "share": share, "as_of": as_of}
                for (writer, peer), (share, as_of) in sorted(self._taken.items())
            ],
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> ReputationBook:
        """The book a snapshot describes; refuses one that breaks the book's invariants."""
        book = cls()
        book._as_of = None if data["as_of"] is None else float(data["as_of"])
        book._scores = {str(p): float(v) for p, v in data["scores"].items()}
        book._closed = {str(r) for r in data["closed"]}
        book._banned = {str(p) for p in data["banned"]}
        if any(book._scores.get(p) != 0 for p in book._banned):
            raise ValueError("a banned peer with a score")
        for raw in data["stakes"]:
            stake = Stake(str(raw["round_id"]), str(raw["peer"]), raw["role"], float(raw["amount"]))
            key = (stake.round_id, stake.peer, stake.role)
            if stake.role not in ROLES or stake.amount < 0 or key in book._stakes:
                raise ValueError(f"bad stake in snapshot: {raw}")
            if stake.round_id in book._closed:
                raise ValueError(f"stake in closed round {stake.round_id!r}")
            book._stakes[key] = stake
        for peer, score in book._scores.items():
            if score < 0 or book.locked(peer) > score * (1 + SLACK):
                raise ValueError(f"{peer}: score {score} with {book.locked(peer)} locked")
        if any(s.peer not in book._scores for s in book._stakes.values()):
            raise ValueError("a stake of a peer without a score")
        for raw in data["taken"]:
            share, as_of = float(raw["share"]), float(raw["as_of"])
            if not (math.isfinite(share) and share >= 0 and math.isfinite(as_of)):
                raise ValueError(f"bad loss count in snapshot: {raw}")
            book._taken[(str(raw["writer"]), str(raw["peer"]))] = (share, as_of)
        return book

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReputationBook) and self.snapshot() == other.snapshot()

    __hash__ = None  # type: ignore[assignment]  # mutable
