"""The small typed records that cross package lines, defined once.

They carry no behaviour beyond validation of their own invariants, so the
node, the engines, the network layer and the algorithms can share them
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation, either a chat (messages) or a plain completion (prompt)."""

    model: str
    messages: tuple[Message, ...] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("a generation request needs exactly one of messages or prompt")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Generation:
    """What an engine produced for one request."""

    text: str
    finish_reason: FinishReason
    usage: Usage


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a hosted model is and how it runs: shown on /v1/models, later announced to peers."""

    name: str
    backend: str
    source: str
    context_length: int
    chat: bool
    hardware: str
    parallel: int = 1
    tokens_per_second: float | None = None
    extra: dict[str, str] = field(default_factory=dict)
