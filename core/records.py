"""The small typed records that cross package lines, defined once.

They carry no behaviour beyond validation of their own invariants, so the
node, the engines, the network layer and the algorithms can share them
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SWARM_MODEL = "swarm"  # the network as one model: the router and the peers decide who answers

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "cancelled"]
# The topics a peer's say is held in, one reputation each: a code model that knows no civics still
# answers code. A question's domain is the nearest of these to it (node.router); GENERAL is the rest.
Domain = Literal["general", "medical", "logic", "code"]
DOMAINS: tuple[Domain, ...] = ("general", "medical", "logic", "code")
GENERAL: Domain = "general"


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
    # What the operator charges per token in or out, in whatever unit the network agrees on
    # (money, energy): the router keeps each request within the caller's cost budget with it.
    price_per_token: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelLoad:
    """How busy one hosted model is right now."""

    running: int = 0
    waiting: int = 0


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What a peer announces about itself: who it is, how to reach it, what it hosts and how busy it is."""

    peer_id: str
    addrs: tuple[str, ...]
    models: tuple[ModelInfo, ...]
    load: dict[str, ModelLoad]
    version: str
    http_url: str | None = None
    hardware: str = ""
    announced_at: float = 0.0
    # The routing table this peer uses (version, built at): a peer that sees a newer one pulls it.
    table_version: str | None = None
    table_created_at: float = 0.0
    # The head of the ledger this peer holds: a peer that holds another pulls what it lacks.
    ledger_head: str | None = None
    ledger_entries: int = 0


def to_wire(record: object) -> dict:
    """A record as plain JSON-able data, for messages between peers."""
    return _plain(record)  # type: ignore[return-value]


def _plain(value: object) -> object:
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}  # type: ignore[attr-defined]
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def request_from_wire(data: dict) -> GenerationRequest:
    messages = data.get("messages")
    return GenerationRequest(
        model=str(data["model"]),
        messages=None if messages is None else tuple(Message(m["role"], str(m["content"])) for m in messages),
        prompt=data.get("prompt"),
        max_tokens=int(data["max_tokens"]),
        temperature=float(data["temperature"]),
        top_p=float(data["top_p"]),
        stop=tuple(str(s) for s in data.get("stop", ())),
        seed=data.get("seed"),
    )


def generation_from_wire(data: dict) -> Generation:
    usage = data["usage"]
    return Generation(
        str(data["text"]),
        data["finish_reason"],
        Usage(int(usage["prompt_tokens"]), int(usage["completion_tokens"])),
    )


def peer_from_wire(data: dict) -> PeerInfo:
    return PeerInfo(
        peer_id=str(data["peer_id"]),
        addrs=tuple(str(a) for a in data.get("addrs", ())),
        models=tuple(ModelInfo(**{**m, "extra": dict(m.get("extra") or {})}) for m in data.get("models", ())),
        load={
            name: ModelLoad(int(v.get("running", 0)), int(v.get("waiting", 0)))
            for name, v in (data.get("load") or {}).items()
        },
        version=str(data.get("version", "")),
        http_url=data.get("http_url"),
        hardware=str(data.get("hardware", "")),
        announced_at=float(data.get("announced_at", 0.0)),
        table_version=None if data.get("table_version") is None else str(data["table_version"]),
        table_created_at=float(data.get("table_created_at", 0.0)),
        ledger_head=None if data.get("ledger_head") is None else str(data["ledger_head"]),
        ledger_entries=int(data.get("ledger_entries", 0)),
    )
