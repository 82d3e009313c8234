"""The node's HTTP wire format, defined once for the node and the client SDK."""

from __future__ import annotations

from typing import Any

DEFAULT_PORT = 8420


def choice_text(choice: dict[str, Any]) -> str:
    """The text of an OpenAI choice, whether chat (message or delta) or plain completion."""
    part = choice.get("message") or choice.get("delta")
    return (part.get("content") if part is not None else choice.get("text")) or ""
