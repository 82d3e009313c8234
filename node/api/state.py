"""What the API serves, and how its routes reach it: `Node`, a FastAPI dependency on the app's state."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from core.records import Domain, GenerationRequest
from core.wire.requests import SwarmOptions
from routing.router import Expert, RouteDecision
from routing.selection import Budget

from ..accel import Accelerator
from ..challenges import ChallengeService
from ..hosting import HostedModel
from ..ledger import LedgerService
from ..metrics import NodeMetrics
from ..network import NetworkService, RemoteModel
from ..rounds import RoundService
from ..router import Router, experts
from ..watch import Watch
from .errors import APIError

ROUND_EXPERTS = 3  # answerers in a consensus or vote round unless the request says otherwise
CHARS_PER_TOKEN = 4  # to estimate a prompt's tokens before any engine has tokenised it


class NodeState:
    """What the API serves: the hosted models, the peer network (if any) and the node's metrics."""

    def __init__(
        self,
        models: dict[str, HostedModel],
        metrics: NodeMetrics,
        api_keys: tuple[str, ...] = (),
        network: NetworkService | None = None,
        router: Router | None = None,
        rounds: RoundService | None = None,
        ledger: LedgerService | None = None,
        accelerator: Accelerator | None = None,
        watch: Watch | None = None,
    ) -> None:
        self.models = models
        self.watch = watch  # what the dashboard shows
        self.accelerator = accelerator
        self.router = router
        self.rounds = rounds
        self.ledger = ledger
        self.metrics = metrics
        self.api_keys = tuple(k.encode() for k in api_keys)
        self.network = network
        self.started = time.time()
        self.challenges: ChallengeService | None = None  # set once the ledger's challenges run

    @property
    def node_id(self) -> str | None:
        return self.network.transport.peer_id if self.network else None

    def model(self, name: str) -> HostedModel | RemoteModel:
        """The local model of that name, else the peers that host it (forwarding)."""
        hosted = self.models.get(name)
        if hosted is not None:
            return hosted
        remote = self.network.remote(name) if self.network else None
        if remote is not None:
            return remote
        raise APIError(
            404,
            f"model {name!r} is not served in this network; available: {', '.join(self.model_names())}",
            code="model_not_found",
            param="model",
        )

    def model_names(self) -> list[str]:
        remote = self.network.table.models() if self.network else {}
        return sorted(set(self.models) | set(remote))

    def required_router(self) -> Router:
        if self.router is None:
            raise APIError(404, "this node does not route", code="not_found")
        return self.router

    def required_accelerator(self) -> Accelerator:
        if self.accelerator is None:
            raise APIError(404, "this node learns no acceleration", code="not_found")
        return self.accelerator

    def required_ledger(self) -> LedgerService:
        if self.ledger is None:
            raise APIError(404, "this node keeps no ledger", code="not_found")
        return self.ledger

    async def route(self, question: str, request: GenerationRequest, options: SwarmOptions) -> Routed:
        """The router's decision over the experts with a say in the question's domain, and those left out."""
        if self.router is None:
            raise APIError(404, "this node does not route: no model 'swarm' here", code="model_not_found")
        if options.mode != "route" and self.rounds is None:
            raise APIError(
                400,
                f"this node runs no rounds: mode {options.mode!r} is unavailable; use mode 'route'",
                code="mode_unsupported",
                param="swarm.mode",
            )
        table = self.network.table if self.network else None
        everyone = experts(self.models, table)
        domain: Domain | None = None
        in_reach = everyone
        if self.ledger is not None:
            ledger, domain = self.ledger, await self.router.domain(question)
            me = ledger.identity.peer_id
            in_reach = experts(self.models, table, lambda peer: ledger.may(peer or me, "answer", domain))
        if not in_reach and self.ledger is not None and everyone:
            raise APIError(
                503,
                f"no expert has a say in the domain {domain!r} yet: the peers hosting models have not "
                "passed its proof-of-capability challenges (see `swarm ledger`)",
                code="no_eligible_expert",
            )
        decision = await self.router.decide(
            question,
            in_reach,
            budget(options),
            prompt_tokens=math.ceil(len(question) / CHARS_PER_TOKEN),
            max_tokens=request.max_tokens,
        )
        if decision.best is None:
            why = "; ".join(f"{name}: {reason}" for name, reason in decision.selection.reasons.items())
            raise APIError(
                400, f"no expert fits the budget ({why})", code="budget_unsatisfiable", param="swarm"
            )
        kept = {e.model for e in in_reach}
        return Routed(decision, domain, [e for e in everyone if e.model not in kept])


@dataclass(frozen=True)
class Routed:
    """A routing decision, the question's domain (None: no ledger), and the models in reach left out
    for lack of a say there (each by the host it would have gone to)."""

    decision: RouteDecision
    domain: Domain | None
    without_say: list[Expert]


def budget(options: SwarmOptions) -> Budget:
    """The caller's budget for the router; unset limits are no limits."""
    return Budget(
        max_experts=options.experts or (1 if options.mode == "route" else ROUND_EXPERTS),
        max_latency_s=math.inf if options.max_latency_s is None else options.max_latency_s,
        max_cost=math.inf if options.max_cost is None else options.max_cost,
    )


def _node(request: Request) -> NodeState:
    return request.app.state.node


Node = Annotated[NodeState, Depends(_node)]
