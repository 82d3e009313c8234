"""Typed results of the client SDK, built from the node's answers as the wire format (core.wire) reads them.

The wire models are the node's JSON field for field; the classes here are what a
caller wants to read of it: the text of an answer, who answered it, the models and
the peers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from core.records import PeerInfo, Usage
from core.wire import admin, completions, provenance
from core.wire.errors import ErrorResponse

# The wire's own models, where what a caller reads is the JSON field for field: re-exported.
from core.wire.provenance import CandidateReport as CandidateReport
from core.wire.provenance import ExpertReport as ExpertReport
from core.wire.provenance import VoteReport as VoteReport
from core.wire.requests import SwarmOptions as SwarmOptions

_COMPLETION: TypeAdapter[completions.ChatCompletion | completions.TextCompletion] = TypeAdapter(
    Annotated[completions.ChatCompletion | completions.TextCompletion, Field(discriminator="object")]
)
_CARD: TypeAdapter[completions.ModelCard | completions.SwarmModelCard] = TypeAdapter(
    completions.ModelCard | completions.SwarmModelCard
)
# A chat stream's events: chunks, or the error that ended it after the headers were sent.
CHAT_EVENT: TypeAdapter[completions.ChatCompletionChunk | ErrorResponse] = TypeAdapter(
    completions.ChatCompletionChunk | ErrorResponse
)


def _usage(usage: completions.Usage | None) -> Usage | None:
    return usage.record() if usage is not None else None


@dataclass(frozen=True)
class RouteReport:
    """Why the answer came from where it came from (the `swarm` object of a routed response)."""

    mode: str
    model: str
    peer_id: str | None
    table_version: str | None
    decision_ms: float
    chosen: tuple[str, ...]
    experts: tuple[ExpertReport, ...]
    raw: dict[str, Any]

    @classmethod
    def of(cls, report: provenance.RouteReport) -> RouteReport:
        return cls(
            report.mode,
            report.answered_by.model,
            report.answered_by.peer_id,
            report.table_version,
            report.decision_ms,
            tuple(report.selection.chosen),
            tuple(report.experts),
            report.model_dump(mode="json"),
        )


@dataclass(frozen=True)
class RoundReport:
    """The provenance of a consensus or vote round (the `swarm` object): candidates, votes, judges,
    who missed what, timings per phase in ms, and the routing that chose the answerers."""

    mode: str
    round_id: str
    model: str
    peer_id: str
    candidate: str
    degraded: str | None
    confidence: float | None
    candidates: tuple[CandidateReport, ...]
    votes: tuple[VoteReport, ...]
    judges: dict[str, float]
    missed: tuple[dict[str, str], ...]
    timings_ms: dict[str, float]
    routing: RouteReport | None
    raw: dict[str, Any]

    @classmethod
    def of(cls, report: provenance.RoundReport) -> RoundReport:
        return cls(
            report.mode,
            report.round_id,
            report.answered_by.model,
            report.answered_by.peer_id,
            report.answered_by.candidate,
            report.degraded,
            report.confidence,
            tuple(report.candidates),
            tuple(report.votes),
            {j.peer_id: j.weight for j in report.judges},
            tuple(m.model_dump() for m in report.missed),
            dict(report.timings_ms),
            RouteReport.of(report.routing),
            report.model_dump(mode="json"),
        )


def swarm_report(report: provenance.SwarmReport | None) -> RouteReport | RoundReport | None:
    """The `swarm` object of an answer, typed by its mode."""
    if report is None:
        return None
    return RouteReport.of(report) if isinstance(report, provenance.RouteReport) else RoundReport.of(report)


@dataclass(frozen=True)
class Completion:
    """A finished chat or text completion; `swarm` says who answered a request to the model `swarm`."""

    id: str
    model: str
    text: str
    finish_reason: str | None
    usage: Usage | None
    raw: dict[str, Any]
    swarm: RouteReport | RoundReport | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Completion:
        answer = _COMPLETION.validate_python(body)
        return cls(
            answer.id,
            answer.model,
            answer.text,
            answer.finish_reason,
            _usage(answer.usage),
            body,
            swarm_report(answer.swarm),
        )


@dataclass(frozen=True)
class CompletionChunk:
    """One streamed piece: text, and on the last one the finish reason (and usage, if asked)."""

    id: str
    model: str
    text: str
    finish_reason: str | None
    usage: Usage | None
    swarm: RouteReport | RoundReport | None = None  # on the first chunk of a stream from the model swarm

    @classmethod
    def of(cls, chunk: completions.ChatCompletionChunk) -> CompletionChunk:
        return cls(
            chunk.id,
            chunk.model,
            chunk.text,
            chunk.finish_reason,
            _usage(chunk.usage),
            swarm_report(chunk.swarm),
        )


@dataclass(frozen=True)
class ModelCard:
    id: str
    backend: str | None
    context_length: int | None  # None: the model swarm, whose context is its experts'
    chat: bool | None
    state: str | None
    tokens_per_second: float | None
    hosts: tuple[dict[str, Any], ...] = ()  # every node that runs it: peer_id, local, http_url, load, ...

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ModelCard:
        card = _CARD.validate_python(body)
        hosts = tuple(host.model_dump() for host in card.hosts)
        if isinstance(card, completions.SwarmModelCard):
            return cls(card.id, card.backend, None, card.chat, card.state, None, hosts)
        return cls(
            card.id, card.backend, card.context_length, card.chat, card.state, card.tokens_per_second, hosts
        )


@dataclass(frozen=True)
class Health:
    status: str
    version: str
    node_id: str | None
    models: dict[str, str]
    # status (public, private, unknown), relays, confirmed_by, relay_service, advice; None: not on a network
    reachability: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Health:
        health = admin.Health.model_validate(body)
        reach = health.reachability.model_dump() if health.reachability else None
        return cls(health.status, health.version, health.node_id, dict(health.models), reach)


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
    path: str | None = None  # how the node is connected to it: direct, relayed; None: not now (or itself)

    @classmethod
    def of(cls, info: PeerInfo) -> Peer:
        """A peer from its announcement: this node itself, or (a SeenPeer) one of its peer table."""
        seen = info if isinstance(info, admin.SeenPeer) else None
        return cls(
            info.peer_id,
            info.http_url,
            tuple(m.name for m in info.models),
            info.addrs,
            info.version,
            info.hardware,
            seen.rtt_ms if seen else None,
            seen.state if seen else "self",
            {name: dataclasses.asdict(load) for name, load in info.load.items()},
            seen.path if seen else None,
        )


@dataclass(frozen=True)
class NetworkView:
    """A node's own announcement and its peer table."""

    self: Peer | None
    peers: tuple[Peer, ...]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> NetworkView:
        view = admin.NetworkView.model_validate(body)
        return cls(Peer.of(view.self) if view.self else None, tuple(Peer.of(p) for p in view.peers))
