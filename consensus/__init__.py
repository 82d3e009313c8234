"""The ledger: every round's and challenge's outcome, signed, hash-chained per gateway, replicated.

Pure of the network: `entry` is the format and what one entry proves on its
own, `ledger` keeps the entries (SQLite) and applies them in one order to the
reputation book, `checkpoint` closes the past the network wrote down, and
`fork` is the proof that a gateway signed two entries for one place in its
chain. `node.ledger` spreads them between peers.
"""

from consensus.checkpoint import Checkpoint
from consensus.entry import GENESIS, BadEntry, LedgerEntry, check, from_wire, make
from consensus.fork import Fork, fork_from_wire
from consensus.ledger import Added, Ledger, verify

__all__ = [
    "GENESIS",
    "Added",
    "BadEntry",
    "Checkpoint",
    "Fork",
    "Ledger",
    "LedgerEntry",
    "check",
    "fork_from_wire",
    "from_wire",
    "make",
    "verify",
]
