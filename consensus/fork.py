"""Forks: two entries a gateway signed for one place in its chain, kept as the proof that it lied.

A gateway that signs two different entries with the same `seq` can show one history to some nodes and
another to the rest; each would keep the first it saw and the network would split. So the two entries
are kept together as a `Fork`, spread like entries (gossip and catch-up), and settle it the same way on
every node, whichever entry each saw first: the chain is cut where it forked (neither entry, nor any
after them, is applied; the gateway's chain takes nothing more), and the gateway loses its say for good
from its last entry before the fork on (`Standing.ban`). Both entries are signed by the gateway,
so the proof needs nobody's word; which two entries make it does not matter, only where the chain is
cut, and a fork lower down the same chain replaces one higher up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .entry import BadEntry, LedgerEntry, from_wire


@dataclass(frozen=True, slots=True)
class Fork:
    first: LedgerEntry
    second: LedgerEntry

    def __post_init__(self) -> None:
        a, b = self.first, self.second
        if (a.gateway, a.seq) != (b.gateway, b.seq) or a.digest == b.digest:
            raise BadEntry("a fork is two different entries of one gateway with one seq")

    @property
    def gateway(self) -> str:
        return self.first.gateway

    @property
    def seq(self) -> int:
        return self.first.seq

    @property
    def digests(self) -> tuple[str, str]:
        return self.first.digest, self.second.digest

    @classmethod
    def between(cls, one: LedgerEntry, other: LedgerEntry) -> Fork:
        """The fork two entries make, in one order whichever came first."""
        first, second = sorted((one, other), key=lambda e: e.digest)
        return cls(first, second)

    def to_wire(self) -> list[dict[str, Any]]:
        return [self.first.to_wire(), self.second.to_wire()]


def fork_from_wire(data: Any) -> Fork:
    """A fork received from a peer: two entries that each check (`entry.from_wire`); BadEntry if not."""
    if not isinstance(data, Sequence) or isinstance(data, str | bytes) or len(data) != 2:
        raise BadEntry("a fork is a list of two entries")
    return Fork.between(from_wire(data[0]), from_wire(data[1]))
