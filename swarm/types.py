"""Typed results of the client SDK, parsed from the node's OpenAI-shaped JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .records import Usage


def choice_text(choice: dict[str, Any]) -> str:
    """The text of an OpenAI choice, whether chat (message or delta) or plain completion."""
    part = choice.get("message") or choice.get("delta")
    return (part.get("content") if part is not None else choice.get("text")) or ""


def _usage(body: dict[str, Any]) -> Usage | None:
    usage = body.get("usage")
    if not usage:
        return None
    return Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))


@dataclass(frozen=True)
class Completion:
    """A finished chat or text completion."""

    id: str
    model: str
    text: str
    finish_reason: str | None
    usage: Usage | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Completion:
        choice = body["choices"][0]
        return cls(
            body["id"], body["model"], choice_text(choice), choice.get("finish_reason"), _usage(body), body
        )


@dataclass(frozen=True)
class CompletionChunk:
    """One streamed piece: text, and on the last one the finish reason (and usage, if asked)."""

    id: str
    model: str
    text: str
    finish_reason: str | None
    usage: Usage | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> CompletionChunk:
        choices = body.get("choices") or [{}]
        choice = choices[0]
        return cls(
            body.get("id", ""),
            body.get("model", ""),
            choice_text(choice),
            choice.get("finish_reason"),
            _usage(body),
        )


@dataclass(frozen=True)
class ModelCard:
    id: str
    backend: str | None
    context_length: int | None
    chat: bool | None
    state: str | None
    tokens_per_second: float | None
    hosts: tuple[dict[str, Any], ...] = ()  # every node that runs it: peer_id, local, http_url, load, ...

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ModelCard:
        return cls(
            body["id"],
            body.get("backend"),
            body.get("context_length"),
            body.get("chat"),
            body.get("state"),
            body.get("tokens_per_second"),
            tuple(body.get("hosts") or ()),
        )


@dataclass(frozen=True)
class Health:
    status: str
    version: str
    node_id: str | None
    models: dict[str, str]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Health:
        return cls(body["status"], body.get("version", ""), body.get("node_id"), dict(body.get("models", {})))


@dataclass(frozen=True)
class Peer:
    """A node of the network as another node sees it."""

    peer_id: str
    http_url: str | None
    models: tuple[str, ...]
    addrs: tuple[str, ...]
    version: str
    hardware: str
    rtt_ms: float | None
    state: str
    load: dict[str, dict[str, int]]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Peer:
        return cls(
            body["peer_id"],
            body.get("http_url"),
            tuple(m["name"] for m in body.get("models", ())),
            tuple(body.get("addrs", ())),
            body.get("version", ""),
            body.get("hardware", ""),
            body.get("rtt_ms"),
            body.get("state", "self"),
            dict(body.get("load") or {}),
        )


@dataclass(frozen=True)
class NetworkView:
    """A node's own announcement and its peer table."""

    self: Peer | None
    peers: tuple[Peer, ...]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> NetworkView:
        me = body.get("self")
        return cls(
            Peer.from_json(me) if me else None, tuple(Peer.from_json(p) for p in body.get("peers", ()))
        )
