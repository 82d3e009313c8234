"""The SDK against tiny HTTP servers that misbehave on purpose."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import swarm
from swarm import errors

Handler = Callable[[socket.socket], None]


@pytest.fixture
def server() -> Iterator[Callable[[Handler], str]]:
    """Runs a raw-socket server with the given per-connection handler; yields a starter returning its URL."""
    listeners: list[socket.socket] = []

    def start(handler: Handler) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=_handle, args=(conn, handler), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for listener in listeners:
        listener.close()


def _handle(conn: socket.socket, handler: Handler) -> None:
    with conn:
        conn.recv(65536)
        with contextlib.suppress(OSError):  # the client hung up: that is the point of some tests
            handler(conn)


def _drip(conn: socket.socket) -> None:
    """A stream that never ends, one event every 0.2 s: each read is quick, the whole is endless."""
    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
    chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    event = b"data: %s\n\n" % json.dumps({**chunk, "choices": [{"delta": {"content": "."}}]}).encode()
    while True:
        conn.sendall(b"%x\r\n%s\r\n" % (len(event), event))
        time.sleep(0.2)


def _slow_body(conn: socket.socket) -> None:
    body = json.dumps({"object": "list", "data": [{"id": "m"}]}).encode()
    conn.sendall(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
    )
    for byte in body:
        conn.sendall(bytes([byte]))
        time.sleep(0.1)


def test_a_dripping_stream_hits_the_total_deadline(server: Callable[[Handler], str]) -> None:
    url = server(_drip)
    with swarm.Client(url, timeout=1.0) as client:
        started = time.monotonic()
        received = 0
        with pytest.raises(errors.DeadlineExceeded):
            for _ in client.stream_chat("hi", model="m"):
                received += 1
        elapsed = time.monotonic() - started
    assert received >= 2  # it did stream before the deadline ended it
    assert 0.9 < elapsed < 1.6


def test_a_slow_body_hits_the_total_deadline(server: Callable[[Handler], str]) -> None:
    url = server(_slow_body)
    with swarm.Client(url, timeout=1.0) as client:
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded):
            client.models()
    assert time.monotonic() - started < 1.6


def _refuse_then_serve(counter: list[int]) -> Handler:
    def handler(conn: socket.socket) -> None:
        counter.append(1)
        if len(counter) == 1:
            body = b'{"error": {"message": "queue full", "type": "rate_limit_error", "code": "queue_full"}}'
            head = b"HTTP/1.1 429 Too Many Requests\r\nretry-after: 0\r\ncontent-type: application/json\r\n"
        else:
            health = {"status": "ok", "version": "t", "node_id": None, "uptime_s": 1.0, "peers": 0}
            body = json.dumps({**health, "models": {}}).encode()
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        conn.sendall(head + b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))

    return handler


def test_429_with_retry_after_is_retried(server: Callable[[Handler], str]) -> None:
    calls: list[int] = []
    with swarm.Client(server(_refuse_then_serve(calls)), timeout=5) as client:
        assert client.health().status == "ok"
    assert len(calls) == 2


def test_429_is_raised_when_retries_are_off(server: Callable[[Handler], str]) -> None:
    calls: list[int] = []
    client = swarm.Client(server(_refuse_then_serve(calls)), timeout=5, max_retries=0)
    with client, pytest.raises(errors.RateLimited) as refused:
        client.health()
    assert refused.value.code == "queue_full" and refused.value.retry_after == 0
    assert len(calls) == 1


def test_error_bodies_map_to_typed_errors() -> None:
    body = {
        "error": {
            "message": "nope",
            "type": "invalid_request_error",
            "code": "model_not_found",
            "param": "model",
        }
    }
    error = errors.from_response(404, body, None)
    assert isinstance(error, errors.ModelNotFound)
    assert (error.status, error.code, error.param, error.message) == (404, "model_not_found", "model", "nope")
    assert isinstance(errors.from_response(401, body, None), errors.AuthenticationFailed)
    assert isinstance(errors.from_response(503, "down", "7"), errors.ServiceUnavailable)
    assert errors.from_response(503, "down", "7").retry_after == 7.0
    assert type(errors.from_response(418, None, None)) is errors.APIError


def test_a_request_the_node_would_refuse_is_refused_before_sending(server: Callable[[Handler], str]) -> None:
    calls: list[int] = []
    with swarm.Client(server(_refuse_then_serve(calls)), max_retries=0) as client:
        with pytest.raises(errors.BadRequest) as hot:
            client.chat("hi", model="m", temperature=9)
        with pytest.raises(errors.BadRequest) as stops:
            client.complete("hi", model="m", stop=["a", "b", "c", "d", "e"])
    assert (hot.value.status, hot.value.param) == (400, "temperature")
    assert "less than or equal to 2" in hot.value.message
    assert (stops.value.param, stops.value.message) == (
        "stop",
        "invalid 'stop': Value error, at most 4 stop sequences",
    )
    assert calls == []
