"""The node's HTTP wire format, defined once for the node and the client SDK.

Pydantic models, by role: `requests` (the bodies the node accepts), `completions`
(what the OpenAI-compatible endpoints answer), `provenance` (the `swarm` object of
an answer from the model `swarm`), `admin` (the network, ledger and operations
endpoints) and `errors` (every failure). The node validates requests and writes
responses with them, and its /openapi.json is generated from them; the SDK builds
its requests and parses the node's answers with the same ones.
"""

from __future__ import annotations

from typing import Any

DEFAULT_PORT = 8420


def choice_text(choice: dict[str, Any]) -> str:
    """The text of an OpenAI choice, whether chat (message or delta) or plain completion, as the
    OpenAI-compatible servers behind a node's engines send it."""
    part = choice.get("message") or choice.get("delta")
    return (part.get("content") if part is not None else choice.get("text")) or ""
