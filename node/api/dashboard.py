"""The dashboard: a page at `/` for a person to watch the swarm, and the /v1/dashboard API it reads.

The page is static (node/web/) and holds no data, so it is served to anyone who
reaches the node; what it shows comes from /v1/dashboard/*, behind the same
keys as the rest of /v1, and from a live stream of server-sent events (the
node's event bus: rounds as they happen, the models' samples, the ledger's
moves). That API is the page's own and follows it, so it is left out of the
published schema. Every byte the page loads comes from this node, and its content
security policy says so, so it works offline and reaches nowhere else.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from functools import cache
from importlib import resources
from typing import Any

import trio
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from core import __version__

from ..events import Event, Subscription, TooManySubscribers
from ..rounds import RoundResult
from ..watch import Watch
from .admin import _table_summary, peers
from .errors import APIError
from .provenance import round_report
from .state import Node, NodeState

# The page's own API, not part of the published contract (/openapi.json): it follows the page.
router = APIRouter(include_in_schema=False)

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# Nothing from elsewhere, no inline script, no framing: the page is this node's and only this node's.
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
KEEPALIVE_S = 15.0  # a comment on a quiet stream, so that a reader (or a proxy) knows it is alive
LIGHT = ("report", "routing")  # what the list of rounds leaves out of each round: ask for one to see it


def round_provenance(result: RoundResult) -> dict[str, Any]:
    """A finished round as the chat completion reports it (its `swarm` object), for the Watch to keep."""
    assert result.routing is not None, "a round run through the API carries its routing"
    return round_report(result, result.routing).model_dump(mode="json")


@cache
def _asset(name: str) -> bytes:
    return (resources.files("node") / "web" / name).read_bytes()


def _served(name: str) -> Response:
    headers = {
        "Content-Security-Policy": POLICY,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-cache",  # a node that was upgraded serves its new page at once
    }
    return Response(_asset(name), media_type=ASSETS[name], headers=headers)


@router.get("/")
async def page() -> Response:
    return _served("index.html")


@router.get("/dashboard/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise APIError(404, f"no such file: {name}", type="not_found")
    return _served(name)


def _watch(node: NodeState) -> Watch:
    if node.watch is None:
        raise APIError(404, "this node keeps no dashboard", code="not_found")
    return node.watch


@router.get("/v1/dashboard/node", summary="This node: its models, with their series of samples")
async def this_node(node: Node) -> dict[str, Any]:
    watch = _watch(node)
    return {
        "node_id": node.node_id,
        "version": __version__,
        "started": node.started,
        "sample_interval_s": watch.sample_interval_s,
        "models": [
            {
                "name": name,
                "backend": model.info.backend,
                "hardware": model.info.hardware,
                "context_length": model.info.context_length,
                "parallel": model.info.parallel,
                "state": model.state,
                "series": watch.model_series[name].to_json(),
            }
            for name, model in node.models.items()
        ],
        "cursor": watch.bus.seq,
    }


@router.get("/v1/dashboard/network", summary="The peer table, each peer's say, and who sees whom")
async def network(node: Node) -> dict[str, Any]:
    watch = _watch(node)
    view = (await peers(node)).model_dump(mode="json")
    ledger = node.ledger
    for entry in [view["self"], *view["peers"]] if view["self"] else []:
        entry["say"] = ledger.speaks(entry["peer_id"]) if ledger else None
        entry["eligible"] = ledger.proven(entry["peer_id"]) if ledger else None
    in_table = {p["peer_id"] for p in view["peers"]}
    states = node.network.transport.peer_states() if node.network else {}
    view["heartbeat"] = {peer: state for peer, state in states.items() if peer not in in_table}
    view["links"] = await watch.links()
    view["cursor"] = watch.bus.seq
    return view


@router.get("/v1/dashboard/reputation", summary="The reputation table with stakes and say, and its series")
async def reputation(node: Node) -> dict[str, Any]:
    watch = _watch(node)
    return {"ledger": watch.ledger_view() if node.ledger else None, "cursor": watch.bus.seq}


@router.post("/v1/dashboard/ledger/verify", summary="Check the whole ledger here (one check at a time)")
async def verify_ledger(node: Node) -> dict[str, Any]:
    node.required_ledger()
    return await _watch(node).verify()


@router.get("/v1/dashboard/rounds", summary="The last rounds this node ran, newest first, in brief")
async def rounds(node: Node) -> dict[str, Any]:
    watch = _watch(node)
    brief = []
    for view in watch.rounds():
        report = view.get("report") or {}
        brief.append(
            {
                **{k: v for k, v in view.items() if k not in LIGHT},
                "answered_by": report.get("answered_by"),
                "degraded": report.get("degraded"),
            }
        )
    return {"rounds": brief, "cursor": watch.bus.seq}


@router.get("/v1/dashboard/rounds/{round_id}", summary="One round: every phase, and its full provenance")
async def one_round(round_id: str, node: Node) -> dict[str, Any]:
    view = _watch(node).round(round_id)
    if view is None:
        raise APIError(404, f"round {round_id} is not among the last rounds of this node", type="not_found")
    return view


@router.get("/v1/dashboard/routing", summary="The routing table, and which model leads each cluster")
async def routing(node: Node) -> dict[str, Any]:
    table = node.router.table if node.router else None
    if table is None:
        return {"table": None, "clusters": []}
    clusters = []
    for c in range(table.num_clusters):
        top = [m for m in range(len(table.models)) if table.rank[c, m] == 0]  # ties share the lead
        clusters.append(
            {
                "cluster": c,
                "questions": int(table.counts[c].max(initial=0)),
                "leader": ", ".join(table.models[m] for m in top) or None,
                "accuracy": float(table.accuracy[c, top[0]]) if top else None,
            }
        )
    return {"table": _table_summary(table).model_dump(mode="json"), "clusters": clusters}


@router.get("/v1/dashboard/events", summary="The live stream: server-sent events of rounds, samples, ledger")
async def events(node: Node, after: int | None = Query(None, ge=0)) -> StreamingResponse:
    watch = _watch(node)
    try:
        subscription = watch.bus.subscribe(after)
    except TooManySubscribers as exc:
        raise APIError(503, str(exc), type="service_unavailable", headers={"Retry-After": "10"}) from exc
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_stream(subscription), media_type="text/event-stream", headers=headers)


def _frame(event: Event) -> bytes:
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {json.dumps(event.data)}\n\n".encode()


async def _stream(subscription: Subscription) -> AsyncIterator[bytes]:
    try:
        yield b": the node's events\n\n"  # out at once, so the reader knows the stream is open
        while True:
            event = None
            with trio.move_on_after(KEEPALIVE_S):  # not around the yield: the reader's time is its own
                event = await subscription.__anext__()
            yield b": keep-alive\n\n" if event is None else _frame(event)
    except StopAsyncIteration:
        if subscription.dropped is not None:
            yield f"event: dropped\ndata: {json.dumps({'reason': subscription.dropped})}\n\n".encode()
    finally:
        subscription.close()
