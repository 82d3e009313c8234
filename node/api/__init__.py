"""The node's OpenAI-compatible HTTP API, by role: `openai` (completions and models), `admin` (peers,
routing table, ledger), `operations` (health, metrics, acceleration), on `state` (what they serve),
`errors` (OpenAI-shaped failures), `guard` (keys and size limit) and `provenance` (the `swarm` object).
The wire format itself is core.wire."""

from .app import create_app
from .errors import APIError
from .state import NodeState

__all__ = ["APIError", "NodeState", "create_app"]
