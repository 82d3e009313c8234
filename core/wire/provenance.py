"""The `swarm` object of an answer from the model `swarm`: who answered, and why them.

Mode `route` carries a `RouteReport` (the router's choice); modes `consensus` and
`vote` carry a `RoundReport` (the round: candidates, votes, signatures, timings),
which holds the `RouteReport` of the routing that picked its answerers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Mode = Literal["route", "consensus", "vote"]


class _Report(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class RoutedTo(_Report):
    model: str
    peer_id: str | None = Field(description="the node that ran it; null: unknown (no network)")


class RouteBudget(_Report):
    """The budget as asked; null: not limited."""

    experts: int | None
    max_latency_s: float | None
    max_cost: float | None


class RouteSelection(_Report):
    chosen: list[str]
    quality: float = Field(description="predicted probability that at least one chosen expert is right")
    latency_s: float | None = Field(description="predicted; null: unknown")
    cost: float | None
    search: Literal["exact", "greedy"]


class ExpertReport(_Report):
    """One expert as the router saw it: its score, what it predicted, and why it was or wasn't chosen."""

    model: str
    peer_id: str | None
    score: float
    quality: float
    calibrated: bool
    predicted_latency_s: float | None = Field(description="null: unknown (the host announced no speed yet)")
    predicted_cost: float | None
    reason: str


class RouteReport(_Report):
    mode: Mode = Field(description="the mode asked for; a round's routing carries the round's")
    answered_by: RoutedTo
    table_version: str | None
    decision_ms: float
    basis: Literal["clusters", "overall"] = Field(
        description="every expert is scored on the same clusters, the ones nearest the question"
    )
    clusters: list[tuple[int, float]] = Field(description="(cluster, weight) pairs, nearest first")
    budget: RouteBudget
    selection: RouteSelection
    experts: list[ExpertReport]
    domain: str | None = Field(
        default=None, description="the question's domain, whose say decides who may answer; null: no ledger"
    )
    without_say: list[RoutedTo] = Field(
        default_factory=list,
        description="experts in reach left out for lack of a say in the question's domain",
    )
    note: str | None = Field(default=None, description="what eligibility changed, in words")


class Answered(_Report):
    model: str
    peer_id: str
    candidate: str


class SignedStatement(_Report):
    """A statement as its signer sent it (core.statements): anyone can check the signature."""

    kind: str
    signer: str
    body: dict[str, Any]
    signature: str


class CandidateReport(_Report):
    """One anonymised answer of a round: who wrote it, its Bradley-Terry score and its GOOD checks."""

    id: str
    model: str
    peer_id: str
    answer: str
    bt_score: float | None
    good: int
    checks: int
    commitment: SignedStatement
    reveal_signature: str

    @property
    def good_ratio(self) -> float | None:
        return self.good / self.checks if self.checks else None


class VoteReport(_Report):
    judge: str
    a: str
    b: str
    outcome: Literal["first", "second", "tie"] = Field(description="first: a won; second: b won")


class Judge(_Report):
    peer_id: str
    weight: float


class Missed(_Report):
    peer_id: str
    phase: str
    reason: str


class RoundReport(_Report):
    mode: Literal["consensus", "vote"]
    round_id: str
    answered_by: Answered
    degraded: str | None = Field(description="why the round could not run in full, if it could not")
    confidence: float | None
    bt_winner: str | None = Field(
        description="the strongest single candidate, whether or not others agreed with it"
    )
    majority: str | None
    candidates: list[CandidateReport]
    votes: list[VoteReport]
    judges: list[Judge]
    ballots: list[SignedStatement]
    missed: list[Missed]
    timings_ms: dict[str, float] = Field(description="per phase, the routing first")
    routing: RouteReport


SwarmReport = RouteReport | RoundReport
