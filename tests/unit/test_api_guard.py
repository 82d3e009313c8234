"""The API's guard against a hostile client: what a 500 tells, which bodies and hosts get in."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from node.api import NodeState, create_app
from node.metrics import NodeMetrics

SECRET = "/home/operator/.swarm/identity.key could not be read"


async def test_a_500_tells_the_client_a_request_id_and_the_log_the_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guarded = create_app(NodeState({}, NodeMetrics()))

    async def fails() -> None:
        raise PermissionError(SECRET)

    guarded.app.add_api_route("/v1/fails", fails)  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=guarded, raise_app_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="swarm.api"):
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            answer = await c.get("/v1/fails")
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert SECRET not in answer.text and "PermissionError" not in answer.text
    assert error["type"] == "server_error" and error["code"] == "internal_error"
    request_id = answer.headers["x-request-id"]
    assert request_id in error["message"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None and SECRET in str(logged[0].exc_info[1])


class Watched(NodeState):
    """A node that notes every model a request got as far as asking for."""

    def __init__(self, keys: tuple[str, ...] = ()) -> None:
        super().__init__({}, NodeMetrics(), keys)
        self.asked: list[str] = []

    def model(self, name: str) -> Any:
        self.asked.append(name)
        return super().model(name)


def client(
    state: NodeState, *, bind: str = "127.0.0.1", base_url: str = "http://127.0.0.1:8000"
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(state, bind=bind))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]})


async def test_a_cross_origin_text_plain_post_reaches_no_model() -> None:
    state = Watched()
    async with client(state) as c:
        # What a web page may send without a preflight: a "simple" request.
        plain = await c.post(
            "/v1/chat/completions",
            content=CHAT,
            headers={"content-type": "text/plain"},
        )
        form = await c.post(
            "/v1/chat/completions",
            content=CHAT,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        unlabelled = await c.post("/v1/chat/completions", content=CHAT)
    for refused in (plain, form, unlabelled):
        assert refused.status_code == 415, refused.text
        assert refused.json()["error"]["code"] == "unsupported_media_type"
    assert state.asked == []


async def test_a_page_from_another_origin_gets_nothing_done_even_without_a_body() -> None:
    async with client(Watched()) as c:
        ping = await c.post("/v1/peers/someone/ping", headers={"origin": "https://evil.example"})
        same = await c.post("/v1/peers/someone/ping", headers={"origin": "http://127.0.0.1:8000"})
    assert ping.status_code == 403 and ping.json()["error"]["code"] == "cross_origin"
    assert same.status_code == 404  # the node's own page may: the peer is simply unknown


async def test_a_rebound_host_name_reads_nothing_from_a_loopback_node() -> None:
    for host in ("evil.example:8000", "127.0.0.1.evil.example:8000", "127.0.0.1:9999"):
        async with client(Watched()) as c:
            answer = await c.get("/v1/models", headers={"host": host})
        assert answer.status_code == 421, host
        assert answer.json()["error"]["code"] == "misdirected_request"
    for host in ("localhost:8000", "127.0.0.1:8000", "[::1]:8000"):
        async with client(Watched()) as c:
            assert (await c.get("/v1/models", headers={"host": host})).status_code == 200, host
        async with client(Watched()) as c:
            assert (await c.get("/", headers={"host": host})).status_code == 200, host
    # Bound to every address, the node answers to whatever name reaches it (its keys guard it).
    async with client(Watched(), bind="0.0.0.0") as c:
        assert (await c.get("/v1/models", headers={"host": "node.example:8000"})).status_code == 200
