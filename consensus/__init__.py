"""The ledger: every round's and challenge's outcome, signed, hash-chained per gateway, replicated.

Pure of the network: `entry` is the format and what one entry proves on its
own, `ledger` keeps the entries (SQLite) and applies them in one order to the
reputation book. `node.ledger` spreads them between peers.
"""

from consensus.entry import GENESIS, BadEntry, LedgerEntry, check, from_wire, make
from consensus.ledger import Added, Ledger, verify

__all__ = [
    "GENESIS",
    "Added",
    "BadEntry",
    "Ledger",
    "LedgerEntry",
    "check",
    "from_wire",
    "make",
    "verify",
]
