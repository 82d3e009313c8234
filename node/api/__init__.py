"""The node's OpenAI-compatible HTTP API."""

from .openai import NodeState, create_app

__all__ = ["NodeState", "create_app"]
