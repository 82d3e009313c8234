"""Checkpoints: the past the network has written down, which no entry that comes later can change.

Entries are applied in the order of their own dates, and a date is whatever its signer wrote. Without
checkpoints a fresh key could date an entry at=1, before everything, when nobody had a say yet and
anyone's challenge counted, and so change who has a say today. A checkpoint closes the past:

- Time is cut into epochs of `EVERY_S` seconds. At `T`, the end of an epoch, the checkpoint names how
  many entries of each chain are dated before `T`: its record is `{"checkpoint": T, "heads": {gateway:
  n}}`, so it covers entries 0..n-1 of each chain it names. Every node with a say signs the one of what
  it holds, a little after `T` (`node.ledger`), as an entry of its own chain (`type` `checkpoint`); nodes
  holding the same entries sign the same record. A chain counts once per epoch: a signer's checkpoint
  entries count only while their epochs rise along its chain.
- A checkpoint is final once its signers hold more than half the say (`carries`) in the world it
  covers: the book made of the entries it covers alone, so that an entry it does not cover, one its
  signers did not have, cannot sway whether it is final. It must also cover everything the last final
  checkpoint covers (`extends`).
- Once a checkpoint is final, an entry dated before its `T` that it does not cover is void: it stays
  in its chain (so the chain goes on), is kept, spread and counted in the head, but is never applied.

The ledger keeps its final checkpoints (and stores them), and evaluates only epochs after the last
one: a checkpoint backdated into a closed past never becomes final, whatever it covers. While nothing
is final, in a network's first moments, the past is as open as its bootstrap.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.envelope import canonical
from reputation.rules import Rules
from reputation.standing import Standing

from .entry import CHECKPOINT_EVERY_S, LedgerEntry


def epoch_before(t: float) -> int:
    """The end of the last epoch at or before `t`."""
    return int(t // CHECKPOINT_EVERY_S) * CHECKPOINT_EVERY_S


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a checkpoint entry signs: its time, and per chain how many entries dated before it it covers."""

    time: int
    heads: Mapping[str, int]
    digest: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", hashlib.sha256(canonical(self.to_record())).hexdigest())

    @classmethod
    def of(cls, entry: LedgerEntry) -> Checkpoint:
        return cls.from_record(entry.record)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Checkpoint:
        return cls(int(record["checkpoint"]), {str(g): int(n) for g, n in record["heads"].items()})

    def to_record(self) -> dict[str, Any]:
        return {"checkpoint": self.time, "heads": dict(sorted(self.heads.items()))}

    def covered(self, gateway: str, cut: int | None = None) -> int:
        """How many entries of the gateway's chain it covers; no more than `cut`, where the chain forked."""
        n = self.heads.get(gateway, 0)
        return n if cut is None else min(n, cut)

    def extends(self, other: Checkpoint | None) -> bool:
        """Whether it comes after `other` and covers all that `other` covers."""
        return other is None or (
            self.time > other.time and all(self.heads.get(g, 0) >= n for g, n in other.heads.items())
        )


def say(book: Standing, rules: Rules) -> dict[str, float]:
    """Who has a say in the book, and how much: every peer holding a say in some domain, by its scores."""
    return {peer: book.score(peer) for peer in book.peers() if book.eligible(peer, "answer", rules)}


def carries(signers: Iterable[str], say: Mapping[str, float]) -> bool:
    """Whether the signers hold more than half the say (none is had while nobody has any)."""
    total = sum(say.values())
    return total > 0 and 2 * sum(say.get(signer, 0.0) for signer in set(signers)) > total
