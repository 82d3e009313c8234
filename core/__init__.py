"""The leaf every package shares: typed records, identities, signatures, the wire schema, the SQLite opener.

It imports nothing of ours, so the algorithms, the daemon and the client SDK
can all stand on it without standing on each other (tests/unit/test_layering.py
states the whole layering and checks it).
"""

__version__ = "0.1.0"
