"""Any OpenAI-compatible HTTP server as an engine: vLLM, llama.cpp's server, a hosted API.

The server does the tokenising and the context checks; this engine only
translates (through openai_shape) and turns transport failures into
EngineUnavailable so that the node can tell "down" from "wrong".
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import httpx

from accel.methods import Method
from core.records import Generation, GenerationRequest, ModelInfo

from . import openai_shape
from .base import DEFAULT_CONTEXT_LENGTH, Engine, EngineError, EngineSpec, EngineUnavailable, TextSink

# Asking a server about itself must not hold up the node's start for a whole generation timeout.
_PROBE_TIMEOUT = 10.0


class ServerUnreachable(EngineUnavailable):
    """The connection failed or broke: nothing is listening, or the server died mid-answer."""


class OpenAIEngine(Engine):
    def __init__(
        self,
        spec: EngineSpec,
        *,
        remote_model: str | None = None,
        api_key: str | None = None,
        timeout: float = 600.0,
    ) -> None:
        """`spec.source` is the server's base URL (up to /v1); `remote_model` is the model's name there."""
        self._base_url = spec.source.rstrip("/")
        self._remote_model = remote_model
        self._api_key = api_key
        self._timeout = timeout
        self._client = self._new_client()
        self.info = ModelInfo(
            name=spec.name,
            backend="openai",
            source=self._base_url,
            context_length=spec.context_length or self._server_context_length() or DEFAULT_CONTEXT_LENGTH,
            chat=spec.chat,
            hardware="remote",
            parallel=spec.parallel or 1,
            extra={} if remote_model is None else {"remote_model": remote_model},
        )

    def _new_client(self) -> httpx.Client:
        headers = {} if self._api_key is None else {"Authorization": f"Bearer {self._api_key}"}
        return httpx.Client(
            base_url=self._base_url,
            headers=headers,
            timeout=self._timeout,
            # An HTTP_PROXY meant for the internet must not capture a server on this machine.
            trust_env=not _is_loopback(self._base_url),
        )

    def _server_context_length(self) -> int | None:
        """Ask the server: vLLM lists max_model_len on /models, llama.cpp's server has n_ctx on /props."""
        try:
            models = self._client.get("/models", timeout=_PROBE_TIMEOUT).json().get("data") or []
            for model in models:
                if self._remote_model in (None, model.get("id")) and model.get("max_model_len"):
                    return int(model["max_model_len"])
            # /props sits at the server's root, beside /v1.
            props = self._client.get(httpx.URL(self._base_url).join("/props"), timeout=_PROBE_TIMEOUT).json()
            n_ctx = props.get("default_generation_settings", {}).get("n_ctx")
            return int(n_ctx) if n_ctx else None
        except (httpx.HTTPError, ValueError, AttributeError):
            # Not every server answers these; the caller falls back to a default.
            return None

    @contextmanager
    def _post(self, request: GenerationRequest, method: Method, *, stream: bool) -> Iterator[httpx.Response]:
        """POST the request and yield the open response, with transport failures made EngineUnavailable."""
        path = "/chat/completions" if request.is_chat else "/completions"
        body = {
            **openai_shape.request_body(request, model=self._remote_model, stream=stream),
            **method.request,
        }
        try:
            with self._client.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    _raise_http_error(response)
                yield response
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"model {self.info.name!r}: the server at {self._base_url} is unreachable or went away "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    def generate(self, request: GenerationRequest, method: Method | None = None) -> Generation:
        with self._post(request, self.accepted(method), stream=False) as response:
            return openai_shape.parse_generation(_json(response.read()))

    def stream(self, request: GenerationRequest, sink: TextSink, method: Method | None = None) -> Generation:
        accumulator = openai_shape.StreamAccumulator(sink)
        # Leaving the block early closes the connection, which is how the server learns to stop.
        with self._post(request, self.accepted(method), stream=True) as response:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, ": keep-alive" comments, "event:" names
                payload = line[len("data:") :].strip()
                if payload == "[DONE]" or accumulator.feed(_json(payload)):
                    break
        return accumulator.result()

    def restart(self) -> None:
        old, self._client = self._client, self._new_client()
        old.close()

    def close(self) -> None:
        self._client.close()


def _is_loopback(url: str) -> bool:
    host = httpx.URL(url).host
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name, not an address
        return host == "localhost"


def _json(raw: bytes | str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise EngineError(f"the server sent something that is not JSON: {raw[:200]!r}") from exc
    if not isinstance(value, dict):
        raise EngineError(f"the server sent unexpected JSON: {raw[:200]!r}")
    return value


def _raise_http_error(response: httpx.Response) -> None:
    raw = response.read()
    text = raw[:300].decode(errors="replace")
    if response.status_code == 503:
        # vLLM's answer when its queue is full or it is shutting down: worth retrying elsewhere.
        raise EngineUnavailable(f"the server at {response.url} is not ready (HTTP 503): {text}")
    # A body that is not an OpenAI error is reported by status and text below.
    with suppress(ValueError, AttributeError):
        openai_shape.raise_for_error(json.loads(raw))
    raise EngineError(f"the server answered HTTP {response.status_code}: {text}")
