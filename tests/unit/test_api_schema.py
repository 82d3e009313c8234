"""The node's published schema, read without a node: what the contract fuzz checks against a real one
(tests/integration/test_openapi_contract.py), in the shape a client library reads it."""

from __future__ import annotations

from typing import Any

import pytest

from node.api import NodeState, create_app
from node.metrics import NodeMetrics

ERROR_BODY = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return create_app(NodeState({}, NodeMetrics())).app.openapi()  # type: ignore[attr-defined]


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in schema["paths"].items() for method, op in ops.items()]


def test_every_answer_of_v1_is_documented_with_its_body(schema: dict[str, Any]) -> None:
    for path, method, op in _operations(schema):
        answers = op["responses"]
        assert "422" not in answers, (method, path)  # FastAPI's default; the node answers 400
        if path.startswith("/v1/"):
            for status in ("401", "403", "413", "415", "421"):  # the guard's
                assert answers[status]["content"]["application/json"]["schema"] == ERROR_BODY, (path, status)
        # A body or a query can be malformed; a path that takes any string cannot.
        if "requestBody" in op or any(p["in"] == "query" for p in op.get("parameters", ())):
            assert "400" in answers, (method, path)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_streams_and_metrics_say_what_they_send(schema: dict[str, Any]) -> None:
    chat = schema["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat) == {"200", "400", "401", "403", "404", "413", "415", "421", "429", "500", "503"}
    assert set(chat["200"]["content"]) == {"application/json", "text/event-stream"}
    assert "Retry-After" in chat["429"]["headers"] and "Retry-After" in chat["503"]["headers"]
    assert "ChatCompletionChunk" in schema["components"]["schemas"]
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain; version=0.0.4"]
    table = schema["paths"]["/v1/routing/table"]["put"]["requestBody"]["content"]["application/json"]
    assert table["schema"] == {"$ref": "#/components/schemas/RoutingTable"}
