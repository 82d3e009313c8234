"""One failure table for both wires: a failure relayed from a peer answers the caller as it would here."""

from __future__ import annotations

import pytest

from node.api.errors import APIError
from node.engines.base import (
    ContextLengthExceeded,
    EngineCrashed,
    EngineError,
    EngineUnavailable,
    RequestRejected,
)
from node.failures import error_frame, error_from_frame
from node.hosting import RESTART_RETRY_AFTER_S, InvalidRequest, QueueFull

FAILED_HERE = [
    QueueFull("m", 3, 7),
    InvalidRequest("bad stop", "stop"),
    ContextLengthExceeded(900, 512),
    RequestRejected("two assistant messages"),
    EngineUnavailable("restarting"),
    EngineError("out of memory"),
]


def _answer(error: Exception) -> tuple[int, str, str | None, str | None, dict[str, str]]:
    api = APIError.of(error)
    return api.status, api.detail.type, api.detail.code, api.detail.param, api.headers


@pytest.mark.parametrize("error", FAILED_HERE, ids=lambda e: type(e).__name__)
def test_a_relayed_failure_answers_as_it_would_here(error: Exception) -> None:
    relayed = error_from_frame(error_frame(error)["error"], "peer-1")
    assert type(relayed) is type(error)
    assert _answer(relayed) == _answer(error)
    assert all(
        getattr(relayed, name) == getattr(error, name)
        for name in ("param", "retry_after")
        if hasattr(error, name)
    )


def test_what_each_failure_answers() -> None:
    answers = {type(e).__name__: _answer(e)[:4] for e in FAILED_HERE}
    assert answers == {
        "QueueFull": (429, "rate_limit_error", "queue_full", None),
        "InvalidRequest": (400, "invalid_request_error", None, "stop"),
        "ContextLengthExceeded": (400, "invalid_request_error", "context_length_exceeded", "messages"),
        "RequestRejected": (400, "invalid_request_error", "rejected_by_engine", None),
        "EngineUnavailable": (503, "service_unavailable", "engine_unavailable", None),
        "EngineError": (500, "server_error", "engine_error", None),
    }
    assert _answer(QueueFull("m", 3, 7))[4] == {"Retry-After": "7"}
    assert _answer(EngineUnavailable("x"))[4] == {"Retry-After": str(RESTART_RETRY_AFTER_S)}


def test_a_server_side_failure_names_the_peer_and_a_crash_there_is_unavailability_here() -> None:
    crashed = error_from_frame(error_frame(EngineCrashed("segfault"))["error"], "peer-1")
    assert type(crashed) is EngineUnavailable and str(crashed) == "peer peer-1: segfault"
    refused = error_from_frame(error_frame(RequestRejected("no"))["error"], "peer-1")
    assert str(refused) == "no"
    unknown = error_from_frame({"kind": "Surprise", "message": "?"}, "peer-1")
    assert type(unknown) is EngineError and str(unknown) == "peer peer-1: ?"
