"""What the network, ledger and operations endpoints answer: peers, routing table, ledger, health, accel."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.records import PeerInfo


class _Response(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class Reachability(_Response):
    """Whether strangers can dial this node, as peers that dialed it back from fresh identities found."""

    status: Literal["public", "private", "unknown"] = Field(
        description="public: most peers asked reached it; private: behind NAT or a firewall; unknown: not yet"
    )
    relays: list[str] = Field(description="relays holding a reservation for it: peers reach it through them")
    confirmed_by: list[str] = Field(description="peers whose dial back reached it")
    relay_service: bool = Field(description="whether it serves as a relay for others (--relay)")
    advice: str = Field(description="what the operator can do about it")


class Health(_Response):
    status: Literal["ok", "degraded"] = Field(description="ok: every model is ready")
    version: str
    node_id: str | None = Field(description="the libp2p peer id; null: not on a network")
    uptime_s: float
    models: dict[str, str] = Field(description="each model's state: ready, restarting, ...")
    peers: int
    reachability: Reachability | None = Field(default=None, description="null: not on a network")


# ---- the peer network


@dataclass(frozen=True)
class SeenPeer(PeerInfo):
    """A peer as this node's table holds it: its announcement, and what this node saw of it."""

    rtt_ms: float | None = None
    seen_s_ago: float = 0.0
    state: str = "unknown"  # of the heartbeat: up, suspect, down, unknown
    path: str | None = None  # how this node is connected to it: direct, relayed; None: not connected
    path_via: str | None = None  # the remote ip:port of a direct connection; the relay of a relayed one

    @classmethod
    def of(
        cls,
        info: PeerInfo,
        *,
        rtt_ms: float | None,
        seen_s_ago: float,
        state: str,
        path: str | None = None,
        path_via: str | None = None,
    ) -> SeenPeer:
        announced = {f.name: getattr(info, f.name) for f in fields(PeerInfo)}
        return cls(
            **announced, rtt_ms=rtt_ms, seen_s_ago=seen_s_ago, state=state, path=path, path_via=path_via
        )


class NetworkView(_Response):
    """This node's own announcement and its peer table."""

    self: PeerInfo | None = Field(description="null: not on a network")
    peers: list[SeenPeer]
    routing_table_error: str | None = Field(
        default=None,
        description="why the last routing table this node took up could not be stored (a full disk): it"
        " routes by the one it held; null: no such failure since",
    )


class PingResult(_Response):
    size: int
    count: int
    rtt_ms: list[float]
    requests_per_second: float


# ---- the routing table


class ModelAccuracy(_Response):
    accuracy: float | None = Field(description="over its calibration questions; null: none")
    questions: int


class RoutingTableSummary(_Response):
    version: str
    created_at: float
    embedder: str
    clusters: int
    models: dict[str, ModelAccuracy]


class TableInstalled(_Response):
    adopted: bool = Field(description="false: the node holds a newer table, which it keeps")
    current: RoutingTableSummary


# ---- the ledger


class DomainSay(_Response):
    say: bool = Field(description="whether it may answer here: it holds a say, or the domain is open")
    holds: bool = Field(description="whether it earned a say of its own here")
    score: float
    free: float = Field(description="the part of the score not staked on a running round")
    right: float = Field(description="challenge answers right of those the test counts (faded: fractional)")
    asked: float
    bar: float = Field(description="what a peer with no skill gets right on those questions, plus a margin")
    lower_bound: float = Field(description="the Wilson lower bound on its accuracy; it must beat the bar")


class Standing(_Response):
    peer_id: str
    score: float = Field(description="its scores summed over the domains")
    free: float
    eligible: bool = Field(description="whether it holds a say in some domain")
    domains: dict[str, DomainSay] = Field(default_factory=dict)


class DomainState(_Response):
    holders: int = Field(description="peers holding a say here")
    open: bool = Field(description="fewer hold one than the rules ask: bootstrap rules here")


class _EntrySummary(_Response):
    gateway: str
    seq: int
    at: float
    digest: str


class RoundEntrySummary(_EntrySummary):
    type: Literal["round"] = "round"
    round: str
    candidates: int
    judges: int
    winner: str | None = Field(description="the peer whose answer won")
    missed: int = Field(description="deadlines missed and malformed messages")


class ChallengeEntrySummary(_EntrySummary):
    type: Literal["challenge"] = "challenge"
    peer: str
    right: int
    asked: int


EntrySummary = Annotated[RoundEntrySummary | ChallengeEntrySummary, Field(discriminator="type")]


class LedgerSummary(_Response):
    head: str = Field(description="a digest of every entry in the order applied: equal where the same")
    entries: int
    chains: dict[str, int] = Field(description="per gateway, how many of its entries are held")
    waiting: int = Field(description="entries held back until their predecessors come")
    rejected: int = Field(description="entries from peers that failed to verify")
    bootstrapping: bool = Field(description="no peer has a say yet: challenges count from anyone")
    domains: dict[str, DomainState] = Field(default_factory=dict)
    recent: list[EntrySummary] = Field(description="newest first")
    reputation: list[Standing]


class ChallengeAsked(_Response):
    asked: dict[str, bool] = Field(
        description="per peer, whether it took the request: it challenges this node on its next beat where "
        "it is drawn to"
    )


class LedgerPage(_Response):
    entries: list[dict[str, Any]] = Field(description="signed entries as stored, each chain in order")
    offset: int
    more: bool


# ---- acceleration


class AccelRecord(_Response):
    model: str
    kind: str
    method: str
    tokens_per_s: float
    latency_s: float
    matched: bool | None = Field(description="output identical to the default method's; null: unknown")


class LearnedMethod(_Response):
    model: str
    backend: str
    kind: str
    method: str = Field(description="what the learner picks for a typical task of this kind")
    expected_speedup: float
    records: int
    method_records: int


class MethodCard(_Response):
    name: str
    lossless: bool
    summary: str


class AccelSummary(_Response):
    recent: list[AccelRecord]
    enabled: bool
    exploration: float
    lossy: bool
    records: int
    learned: list[LearnedMethod]
    methods: dict[str, list[MethodCard]] = Field(description="per model, the methods its engine offers")


class ProfiledMethod(_Response):
    model: str
    method: str
    lossless: bool
    runs: int
    matched: int
    claim_holds: bool | None = Field(description="a lossless method whose outputs all matched; null: lossy")
    speedup: float | None


class ProfileResult(_Response):
    seconds: float
    methods: list[ProfiledMethod]
    records: int = Field(description="records in the history now")
