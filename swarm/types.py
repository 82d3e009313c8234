"""Typed results of the client SDK, parsed from the node's OpenAI-shaped JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.records import Usage
from core.wire import choice_text


def _usage(body: dict[str, Any]) -> Usage | None:
    usage = body.get("usage")
    if not usage:
        return None
    return Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))


@dataclass(frozen=True)
class SwarmOptions:
    """How the network answers a request to the model `swarm`, and within what budget."""

    mode: str = "consensus"  # or "route" (the best expert answers) or "vote" (majority over the experts)
    experts: int | None = None  # most experts to ask (the node's default: 1 to route, 3 for a round)
    max_latency_s: float | None = None
    max_cost: float | None = None  # in the unit of the prices the nodes announce

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ExpertReport:
    """One expert as the router saw it: its score, what it predicted, and why it was or wasn't chosen."""

    model: str
    peer_id: str | None  # None: the node that was asked
    score: float
    quality: float
    calibrated: bool
    predicted_latency_s: float | None  # None: unknown (the host announced no speed yet)
    predicted_cost: float | None
    reason: str


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
    def parse(cls, body: dict[str, Any] | None) -> RouteReport | None:
        if not body:
            return None
        return cls(
            body["mode"],
            body["answered_by"]["model"],
            body["answered_by"].get("peer_id"),
            body.get("table_version"),
            float(body.get("decision_ms", 0.0)),
            tuple(body.get("selection", {}).get("chosen", ())),
            tuple(
                ExpertReport(
                    e["model"],
                    e.get("peer_id"),
                    e["score"],
                    e["quality"],
                    e["calibrated"],
                    e.get("predicted_latency_s"),
                    e.get("predicted_cost"),
                    e["reason"],
                )
                for e in body.get("experts", ())
            ),
            body,
        )


@dataclass(frozen=True)
class CandidateReport:
    """One anonymised answer of a round: who wrote it, its Bradley-Terry score and its GOOD checks."""

    id: str
    model: str
    peer_id: str
    answer: str
    bt_score: float | None
    good: int
    checks: int

    @property
    def good_ratio(self) -> float | None:
        return self.good / self.checks if self.checks else None


@dataclass(frozen=True)
class VoteReport:
    judge: str
    a: str
    b: str
    outcome: str  # "first" (a won), "second" (b won) or "tie"


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
    def from_json(cls, body: dict[str, Any]) -> RoundReport:
        return cls(
            body["mode"],
            body["round_id"],
            body["answered_by"]["model"],
            body["answered_by"]["peer_id"],
            body["answered_by"]["candidate"],
            body.get("degraded"),
            body.get("confidence"),
            tuple(
                CandidateReport(
                    c["id"], c["model"], c["peer_id"], c["answer"], c.get("bt_score"), c["good"], c["checks"]
                )
                for c in body.get("candidates", ())
            ),
            tuple(VoteReport(v["judge"], v["a"], v["b"], v["outcome"]) for v in body.get("votes", ())),
            {j["peer_id"]: j["weight"] for j in body.get("judges", ())},
            tuple(body.get("missed", ())),
            dict(body.get("timings_ms", {})),
            RouteReport.parse(body.get("routing")),
            body,
        )


def swarm_report(body: dict[str, Any] | None) -> RouteReport | RoundReport | None:
    """The `swarm` object of a response, typed by its mode."""
    if not body:
        return None
    return RouteReport.parse(body) if body.get("mode") == "route" else RoundReport.from_json(body)


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
        choice = body["choices"][0]
        return cls(
            body["id"],
            body["model"],
            choice_text(choice),
            choice.get("finish_reason"),
            _usage(body),
            body,
            swarm_report(body.get("swarm")),
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
    def from_json(cls, body: dict[str, Any]) -> CompletionChunk:
        choices = body.get("choices") or [{}]
        choice = choices[0]
        return cls(
            body.get("id", ""),
            body.get("model", ""),
            choice_text(choice),
            choice.get("finish_reason"),
            _usage(body),
            swarm_report(body.get("swarm")),
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
