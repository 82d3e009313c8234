"""The API's guard against a hostile client: what a 500 tells, which bodies and hosts get in."""

from __future__ import annotations

import logging

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
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
            answer = await c.get("/v1/fails")
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert SECRET not in answer.text and "PermissionError" not in answer.text
    assert error["type"] == "server_error" and error["code"] == "internal_error"
    request_id = answer.headers["x-request-id"]
    assert request_id in error["message"]
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None and SECRET in str(logged[0].exc_info[1])
