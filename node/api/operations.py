"""Operations: liveness, Prometheus metrics, and what the node learnt about accelerating its models."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from accel.tasks import KINDS, mix
from core import __version__
from core.wire.admin import AccelSummary, Health, MethodCard, ProfileResult
from core.wire.requests import ProfileRequest

from ..accel import profile
from ..reachability import reachability
from .errors import GUARDED, APIError, documented
from .state import Node

router = APIRouter()


class PrometheusText(PlainTextResponse):
    media_type = "text/plain; version=0.0.4"


@router.get("/health", summary="Liveness and the state of every model")
async def health(node: Node) -> Health:
    states = {name: m.state for name, m in node.models.items()}
    return Health(
        status="ok" if all(s == "ready" for s in states.values()) else "degraded",
        version=__version__,
        node_id=node.node_id,
        uptime_s=round(time.time() - node.started, 1),
        models=states,
        peers=len(node.network.table.peers()) if node.network else 0,
        reachability=reachability(node.network.transport) if node.network else None,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PrometheusText,
    responses={200: {"content": {PrometheusText.media_type: {"schema": {"type": "string"}}}}},
)
async def prometheus(node: Node) -> PrometheusText:
    return PrometheusText(node.metrics.render())


@router.get(
    "/v1/accel",
    summary="What the node learned: per task kind, the method it picks, the speed-up",
    responses=documented(*GUARDED, 404),
)
async def accel_summary(node: Node) -> AccelSummary:
    methods = {
        name: [
            MethodCard(name=m.name, lossless=m.lossless, summary=m.summary) for m in hosted.engine.methods()
        ]
        for name, hosted in node.models.items()
    }
    return AccelSummary.model_validate({**node.required_accelerator().summary(), "methods": methods})


@router.post(
    "/v1/accel/profile",
    summary="Run a built-in task mix through every method: a first history",
    responses=documented(*GUARDED, 400, 404),
)
async def accel_profile(body: ProfileRequest, node: Node) -> ProfileResult:
    unknown_kinds = sorted(set(body.kinds or ()) - set(KINDS))
    if unknown_kinds:
        raise APIError(400, f"unknown task kinds {unknown_kinds}; known: {', '.join(KINDS)}", param="kinds")
    accelerator = node.required_accelerator()
    unknown = sorted(set(body.models or ()) - set(node.models))
    if unknown:
        raise APIError(404, f"not hosted here: {', '.join(unknown)}", code="model_not_found", param="models")
    models = {n: m for n, m in node.models.items() if not body.models or n in body.models}
    started = time.perf_counter()
    found = await profile(models, accelerator, mix(body.per_kind, body.seed, tuple(body.kinds or KINDS)))
    return ProfileResult.model_validate(
        {
            "seconds": time.perf_counter() - started,
            "methods": [p.to_json() for p in found],
            "records": len(accelerator.history),
        }
    )
