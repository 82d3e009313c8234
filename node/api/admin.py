"""Network and ledger administration: the peer table, round trips to a peer, the routing table, the ledger."""

from __future__ import annotations

import itertools
import time

from fastapi import APIRouter, Query
from fastapi.responses import Response

from consensus import LedgerEntry
from core.wire.admin import (
    ChallengeAsked,
    ChallengeEntrySummary,
    DomainState,
    LedgerPage,
    LedgerSummary,
    ModelAccuracy,
    NetworkView,
    PingResult,
    RoundEntrySummary,
    RoutingTableSummary,
    SeenPeer,
    Standing,
    TableInstalled,
)
from core.wire.requests import RoutingTable
from routing.table import ClusterTable

from ..router import TableNotStored
from ..transport import PeerUnavailable, RemoteError, RequestTimeout
from .errors import GUARDED, APIError, documented
from .provenance import finite
from .state import Node

router = APIRouter(responses=documented(*GUARDED))
JSON_INTEGERS = 2**53  # the largest a JSON reader holds exactly: the bound of an offset
# A diagnostics ping sends what it is asked to another peer: bounded so that one call can't make this
# node push gigabytes at a peer (it took 10,000 x 4 MiB), yet enough for bench.network's measures.
PING_MAX_SIZE = 64 << 10
PING_MAX_COUNT = 200


@router.get("/v1/peers", summary="This node and its peer table")
async def peers(node: Node) -> NetworkView:
    if node.network is None:
        return NetworkView(self=None, peers=[])
    network = node.network
    now = time.monotonic()
    states = network.transport.peer_states()
    paths = {e.info.peer_id: network.transport.path(e.info.peer_id) for e in network.table.peers()}
    return NetworkView(
        self=network.announcement(),
        routing_table_error=network.router.store_error if network.router else None,
        peers=[
            SeenPeer.of(
                entry.info,
                rtt_ms=entry.rtt_ms,
                seen_s_ago=round(now - entry.last_seen, 1),
                state=states.get(entry.info.peer_id, "unknown"),
                path=(path := paths[entry.info.peer_id]) and path.kind,
                path_via=path and path.remote,
            )
            for entry in network.table.peers()
        ],
    )


@router.post(
    "/v1/peers/{peer_id}/ping",
    summary="Round trips to a peer over libp2p (diagnostics)",
    responses=documented(400, 404, 503),
)
async def ping(
    peer_id: str,
    node: Node,
    size: int = Query(1024, ge=0, le=PING_MAX_SIZE),
    count: int = Query(10, ge=1, le=PING_MAX_COUNT),
) -> PingResult:
    if node.network is None or node.network.table.get(peer_id) is None:
        raise APIError(404, f"peer {peer_id!r} is not in this node's peer table", code="peer_not_found")
    started = time.perf_counter()
    try:
        times = await node.network.ping(peer_id, size, count)
    except (PeerUnavailable, RequestTimeout, RemoteError) as exc:
        raise APIError(503, f"peer {peer_id} did not answer: {exc}", type="service_unavailable") from exc
    elapsed = time.perf_counter() - started
    return PingResult(size=size, count=count, rtt_ms=times, requests_per_second=count / elapsed)


@router.get(
    "/v1/routing/table",
    summary="The routing table this node uses (full=true: all of it)",
    response_model=RoutingTableSummary | RoutingTable,
    responses=documented(400, 404),
)
async def routing_table(node: Node, full: bool = False) -> Response | RoutingTableSummary:
    table = node.required_router().table
    if table is None:
        raise APIError(
            404, "this node holds no routing table yet: run `swarm calibrate`", code="no_routing_table"
        )
    if full:
        return Response(table.to_json(), media_type="application/json")
    return _table_summary(table)


@router.put(
    "/v1/routing/table",
    summary="Install a routing table here, signed by this node; the network takes it up",
    responses=documented(400, 404, 503),
)
async def install_routing_table(body: RoutingTable, node: Node) -> TableInstalled:
    router = node.required_router()
    try:
        table = ClusterTable.from_json(body.model_dump_json())
    except (ValueError, TypeError) as exc:
        raise APIError(400, f"not a valid routing table: {exc}", code="invalid_routing_table") from exc
    # Through the network when there is one, so the peers hear of it at once.
    try:
        adopted = node.network.adopt_table(table) if node.network is not None else router.adopt(table)
    except TableNotStored as exc:
        raise APIError(503, str(exc), type="service_unavailable", code="table_not_stored") from exc
    current = router.table
    assert current is not None
    return TableInstalled(adopted=adopted, current=_table_summary(current))


@router.get(
    "/v1/ledger",
    summary="The ledger's head, its latest entries and the reputation table",
    responses=documented(400, 404),
)
async def ledger_summary(node: Node, limit: int = Query(10, ge=0, le=1000)) -> LedgerSummary:
    service = node.required_ledger()
    ledger = service.ledger
    book, rules = ledger.book, ledger.rules
    domains, rows = service.standing()
    return LedgerSummary(
        head=ledger.head,
        entries=len(ledger),
        chains=ledger.heads(),
        waiting=len(ledger.waiting()),
        rejected=service.rejected,
        bootstrapping=book.bootstrapping(rules),
        recent=[_entry_summary(e) for e in ledger.recent(limit)],
        domains={d: DomainState(**state) for d, state in domains.items()},
        reputation=[Standing(**row) for row in rows],
    )


@router.post(
    "/v1/ledger/challenge-me",
    summary="Ask every peer to challenge this node on its next beat (a newcomer's way in)",
    responses=documented(400, 404),
)
async def challenge_me(node: Node) -> ChallengeAsked:
    node.required_ledger()
    if node.challenges is None or node.challenges.transport is None:
        raise APIError(404, "this node runs no challenges", code="not_found")
    return ChallengeAsked(asked=await node.challenges.ask_to_be_challenged())


@router.get(
    "/v1/ledger/entries",
    summary="The ledger's entries as stored on disk, each chain in order",
    responses=documented(400, 404),
)
async def ledger_entries(
    node: Node,
    offset: int = Query(0, ge=0, le=JSON_INTEGERS),
    limit: int = Query(500, ge=1, le=5000),
) -> LedgerPage:
    ledger = node.required_ledger().ledger
    stored = list(itertools.islice(ledger.stored(), offset, offset + limit + 1))
    return LedgerPage(entries=stored[:limit], offset=offset, more=len(stored) > limit)


def _table_summary(table: ClusterTable) -> RoutingTableSummary:
    return RoutingTableSummary(
        version=table.version,
        created_at=table.created_at,
        embedder=table.embedder,
        clusters=table.num_clusters,
        models={
            name: ModelAccuracy(
                accuracy=finite(float(table.overall[i])), questions=int(table.counts[:, i].sum())
            )
            for i, name in enumerate(table.models)
        },
    )


def _entry_summary(entry: LedgerEntry) -> RoundEntrySummary | ChallengeEntrySummary:
    r = entry.record
    signed = {"gateway": entry.gateway, "seq": entry.seq, "at": entry.at, "digest": entry.digest}
    if entry.type == "round":
        reported = r["reported"]
        return RoundEntrySummary(
            **signed,
            round=r["round"],
            candidates=len(r["candidates"]),
            judges=len(r["ballots"]),
            winner=None if r["winner"] is None else r["candidates"][r["winner"]]["peer"],
            missed=sum(reported["missed"].values()) + sum(reported["malformed"].values()),
        )
    return ChallengeEntrySummary(
        **signed,
        peer=r["peer"],
        right=sum(a["correct"] for a in r["answers"]),
        asked=len(r["answers"]),
    )
