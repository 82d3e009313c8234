"""The dashboard's routes without a network: the page and its files, the keys, the rounds, the stream."""

from __future__ import annotations

import httpx

from node.api import NodeState, create_app
from node.api.dashboard import ASSETS, POLICY, _stream
from node.events import EventBus
from node.metrics import NodeMetrics
from node.watch import Watch

KEY = "k3y"


def client(*keys: str, watch: Watch | None = None) -> httpx.AsyncClient:
    metrics = NodeMetrics()
    watch = watch or Watch(EventBus(), {}, metrics, lambda r: {})
    app = create_app(NodeState({}, metrics, keys, watch=watch))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def test_the_page_and_its_files_are_served_to_anyone_and_let_nothing_else_in() -> None:
    async with client(KEY) as c:
        page = await c.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == POLICY and "default-src 'none'" in POLICY
        sizes = [len(page.content)]
        for name in ASSETS:
            asset = await c.get(f"/dashboard/{name}")
            assert asset.status_code == 200 and asset.headers["content-type"] == ASSETS[name]
            sizes.append(len(asset.content))
        assert sum(sizes) < 200 * 1024
        assert (await c.get("/dashboard/../api/state.py")).status_code == 404
        assert (await c.get("/dashboard/secret.txt")).status_code == 404
        # What the page shows is behind the key, as the rest of /v1.
        assert (await c.get("/v1/dashboard/node")).status_code == 401
        keyed = await c.get("/v1/dashboard/node", headers={"Authorization": f"Bearer {KEY}"})
        assert keyed.status_code == 200 and keyed.json()["models"] == []


async def test_the_views_of_a_node_without_network_ledger_or_rounds() -> None:
    async with client() as c:
        assert (await c.get("/v1/dashboard/network")).json()["peers"] == []
        assert (await c.get("/v1/dashboard/reputation")).json()["ledger"] is None
        assert (await c.get("/v1/dashboard/routing")).json() == {"table": None, "clusters": []}
        assert (await c.get("/v1/dashboard/rounds")).json() == {"rounds": [], "cursor": 0}
        assert (await c.get("/v1/dashboard/rounds/nope")).status_code == 404
        assert (await c.post("/v1/dashboard/ledger/verify")).status_code == 404
        # The dashboard's API is the page's own: not in the published schema.
        paths = (await c.get("/openapi.json")).json()["paths"]
        assert not any(path.startswith("/v1/dashboard") for path in paths)


async def test_the_stream_sends_each_event_and_says_so_when_its_reader_fell_behind() -> None:
    bus = EventBus(buffer=2, keep=2)
    subscription = bus.subscribe()
    frames = _stream(subscription)
    assert (await frames.__anext__()).startswith(b":")  # open at once
    for i in range(3):
        bus.publish("tick", {"i": i})
    assert await frames.__anext__() == b'id: 1\nevent: tick\ndata: {"i": 0}\n\n'
    assert await frames.__anext__() == b'id: 2\nevent: tick\ndata: {"i": 1}\n\n'
    dropped = await frames.__anext__()
    assert dropped.startswith(b"event: dropped\n") and b"fell behind" in dropped
    assert [frame async for frame in frames] == []
    assert bus.subscribers == 0
