"""Holes 6, 8, 11 and 13: a peer or a web page takes over a node's routing table or its API.

    python -m bench.attack_routing_table_api

Each attack runs for real: the table attacks against a node's own network
service and router (a real libp2p transport on loopback, a Sybil transport
next to it, a data dir on a 64 KiB tmpfs for the full disk), the API attacks
against the node's own ASGI app. Each row says what the attacker got. The
Sybil's offer is also what tests/integration/test_routing_table_attacks.py
sends real nodes.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import trio

from core.identity import Identity
from core.records import PeerInfo, to_wire
from core.statements import sign
from node.api import NodeState, create_app
from node.metrics import NodeMetrics
from node.network import ANNOUNCE_TOPIC, INFO_PROTOCOL, TABLE_PROTOCOL, NetworkService
from node.ports import free_port
from node.router import Router
from node.transport import Transport
from routing.table import ClusterTable

YEAR_3000 = 32503680000.0  # 3000-01-01, Unix time
TINY_DISK = "64k"
SECRET = "/home/operator/.swarm/identity.key could not be read"
CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


def table(created_at: float, *, clusters: int = 2, seed: int = 0) -> ClusterTable:
    """A well-formed table for one model, `clusters` clusters of the MiniLM space."""
    centroids = np.random.default_rng(seed).normal(size=(clusters, 384))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return ClusterTable(("m",), centroids, [[1]] * clusters, [[2]] * clusters, created_at=created_at)


async def offer(sybil: Transport, identity: Identity, offered: ClusterTable) -> None:
    """Announce `offered` and serve it, signed by the Sybil itself (its own key, no say), to whoever asks;
    announced both by gossip and to a peer asking directly, as honest nodes do."""
    signed = sign(identity, "routing-table", {"version": offered.version, "created_at": offered.created_at})
    info = to_wire(
        PeerInfo(
            identity.peer_id,
            tuple(sybil.listen_addrs),
            (),
            {},
            "attack",
            table_version=offered.version,
            table_created_at=offered.created_at,
        )
    )

    async def serve_table(sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield {"table": offered.to_json(), "statement": signed.to_wire()}

    async def serve_info(sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield info

    sybil.handle(TABLE_PROTOCOL, serve_table)
    sybil.handle(INFO_PROTOCOL, serve_info)
    await sybil.publish(ANNOUNCE_TOPIC, info)


class UnusedEmbedder:
    """An embedder the victim never needs: its router only stores tables here."""

    name, dim = "all-MiniLM-L6-v2", 384

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), self.dim)) / np.sqrt(self.dim)


@asynccontextmanager
async def victim_and_sybil(data_dir: Path) -> AsyncIterator[tuple[NetworkService, list[BaseException], Any]]:
    """A node's network service and router in `data_dir`, and a Sybil connected to it: yields the
    service, what it died of (if it does), and `attack(table)` that offers the victim a table."""
    crashes: list[BaseException] = []
    victim = Transport(Identity.load_or_create(data_dir / "victim"), port=free_port())
    sybil_identity = Identity.load_or_create(data_dir.parent / f"{data_dir.name}-sybil")
    sybil = Transport(sybil_identity, port=free_port())
    network = NetworkService(
        victim, {}, router=Router(data_dir, embedder=UnusedEmbedder), announce_interval=0.5
    )

    async def serve(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await network.run(task_status=task_status)
        except Exception as exc:  # the node's network service torn down: what the attack is after
            crashes.append(exc)

    async def attack(offered: ClusterTable, seconds: float = 6.0) -> None:
        with trio.move_on_after(seconds):
            while not crashes:
                await offer(sybil, sybil_identity, offered)
                await trio.sleep(0.5)

    async with trio.open_nursery() as nursery:
        await nursery.start(victim.run)
        await nursery.start(sybil.run)
        await nursery.start(serve)
        await sybil.connect(victim.listen_addrs[0])
        yield network, crashes, attack
        nursery.cancel_scope.cancel()


async def future_table() -> str:
    with tempfile.TemporaryDirectory() as directory:
        async with victim_and_sybil(Path(directory) / "node") as (network, _, attack):
            await attack(table(YEAR_3000))
            held = network.router.table if network.router else None
    if held is not None and held.created_at == YEAR_3000:
        return "the victim routes by the Sybil's table, dated 3000-01-01: no honest table can replace it"
    return "nothing: the table dated 3000-01-01 was not adopted"


async def full_disk() -> str:
    with tempfile.TemporaryDirectory() as directory:
        data_dir = Path(directory) / "node"
        (data_dir / "routing").mkdir(parents=True)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TINY_DISK}", "tmpfs", str(data_dir / "routing")],
            capture_output=True,
            text=True,
        )
        if mounted.returncode != 0:
            return f"not measured: a {TINY_DISK} tmpfs needs root ({mounted.stderr.strip()})"
        try:
            async with victim_and_sybil(data_dir) as (network, crashes, attack):
                await attack(table(time.time(), clusters=64))  # some 500 kB: more than the disk holds
                view = network.announcement()
        finally:
            subprocess.run(["umount", str(data_dir / "routing")], check=True)
    if crashes:
        return f"the node's network service died: {crashes[0]!r}"
    reported = getattr(network.router, "store_error", None)
    return f"nothing: the node kept running (announcing as {view.peer_id[:12]}...) and reports {reported!r}"


def _app(state: NodeState, bind: str) -> Any:
    """The node's app as it serves on `bind`; a node from before the guard knew its address (hole 11)
    was built without it, and served every address alike."""
    knows_bind = "bind" in inspect.signature(create_app).parameters
    return create_app(state, bind=bind) if knows_bind else create_app(state)


async def _call(state: NodeState, request: httpx.Request, bind: str = "127.0.0.1") -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(state, bind), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
        return await client.send(request)


class _Watched(NodeState):
    """A node that notes every model a request got as far as asking for."""

    def __init__(self) -> None:
        super().__init__({}, NodeMetrics())
        self.asked: list[str] = []

    def model(self, name: str) -> Any:
        self.asked.append(name)
        return super().model(name)


async def unkeyed_put() -> str:
    with tempfile.TemporaryDirectory() as directory:
        state = NodeState({}, NodeMetrics(), router=Router(Path(directory), embedder=UnusedEmbedder))
        put = httpx.Request(
            "PUT",
            "http://127.0.0.1:8000/v1/routing/table",
            content=table(time.time()).to_json(),
            headers={"content-type": "application/json"},
        )
        answer = await _call(state, put, bind="0.0.0.0")
    if answer.status_code == 200 and answer.json()["adopted"]:
        return "any client that reaches the node installs its routing table (200, adopted), no key asked"
    return f"nothing: {answer.status_code} {answer.json()['error']['code']}"


async def text_plain_chat() -> str:
    state = _Watched()
    chat = httpx.Request(
        "POST",
        "http://127.0.0.1:8000/v1/chat/completions",
        content=CHAT,
        headers={"content-type": "text/plain", "origin": "https://evil.example"},
    )
    answer = await _call(state, chat)
    if state.asked:
        return (
            f"a web page's text/plain POST reached the chat route and its model lookup ({answer.status_code})"
        )
    return f"nothing: {answer.status_code} {answer.json()['error']['code']}, no model asked"


async def rebound_host() -> str:
    answer = await _call(
        _Watched(), httpx.Request("GET", "http://127.0.0.1:8000/v1/models", headers={"host": "evil.example"})
    )
    if answer.status_code == 200:
        return "a page on evil.example rebound to 127.0.0.1 reads the node's answers (200)"
    return f"nothing: {answer.status_code} {answer.json()['error']['code']}"


async def exception_text() -> str:
    guarded = _app(NodeState({}, NodeMetrics()), "127.0.0.1")

    async def fails() -> None:
        raise PermissionError(SECRET)

    guarded.app.add_api_route("/v1/fails", fails)
    transport = httpx.ASGITransport(app=guarded, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        answer = await client.get("/v1/fails")
    if SECRET in answer.text:
        return f"the exception's text, a path on the node included: {answer.json()['error']['message']!r}"
    return f"nothing: {answer.json()['error']['message']!r}"


ATTACKS = {
    "future_table": (
        "6. any peer replaces the routing table",
        "a Sybil with no say announces and serves a routing table dated 3000-01-01, signed by itself",
        future_table,
    ),
    "unkeyed_put": (
        "6. any peer replaces the routing table",
        "PUT /v1/routing/table without a key to a node bound to 0.0.0.0 with no API keys",
        unkeyed_put,
    ),
    "full_disk": (
        "8. a full disk tears a node down",
        f"a peer offers a routing table bigger than the {TINY_DISK} left on the disk of the node's data dir",
        full_disk,
    ),
    "text_plain_chat": (
        "11. a web page drives a loopback node",
        "a web page's cross-origin text/plain POST to /v1/chat/completions of a key-less loopback node",
        text_plain_chat,
    ),
    "rebound_host": (
        "11. a web page drives a loopback node",
        "GET /v1/models with Host: evil.example (DNS rebinding) to a loopback node",
        rebound_host,
    ),
    "exception_text": (
        "13. a 500 tells the exception",
        "a request that makes a route raise, its exception naming a path",
        exception_text,
    ),
}
BEFORE = "measured on d8b2d4f, before the fixes"
GAINED_BEFORE = {
    "future_table": "the victim routes by the Sybil's table, dated 3000-01-01:"
    " no honest table can replace it",
    "unkeyed_put": "any client that reaches the node installs its routing table (200, adopted), no key asked",
    "full_disk": "the node's network service died: ExceptionGroup('Exceptions from Trio nursery',"
    " [OSError(28, 'No space left on device')])",
    "text_plain_chat": "a web page's text/plain POST reached the chat route and its model lookup (404)",
    "rebound_host": "a page on evil.example rebound to 127.0.0.1 reads the node's answers (200)",
    "exception_text": "the exception's text, a path on the node included: 'internal error: PermissionError:"
    " /home/operator/.swarm/identity.key could not be read'",
}


def rows() -> list[dict[str, str]]:
    return [
        {
            "hole": hole,
            "attack": attack,
            "gained_after": trio.run(measure),
            "gained_before": f"{GAINED_BEFORE[name]} ({BEFORE})",
        }
        for name, (hole, attack, measure) in ATTACKS.items()
    ]


def main() -> int:
    for name, (hole, attack, measure) in ATTACKS.items():
        print(json.dumps({"name": name, "hole": hole, "attack": attack, "gained": trio.run(measure)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
