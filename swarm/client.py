"""The client SDK: `AsyncClient` (trio or asyncio) and `Client` (blocking).

Every call has one total deadline, `timeout`, covering connecting, queueing,
generating and reading the whole stream, not a limit per socket operation.
Retries happen only where the node provably did no work: the connection
could not be made, or the node refused with 429/503 and said when to retry.

The blocking `Client` runs the async implementation on an event loop in a
helper thread (anyio's blocking portal), so both share one code path and
the same deadline semantics.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypedDict, Unpack

import anyio
import anyio.from_thread
import httpx
import pydantic_core
from pydantic import BaseModel, ValidationError

from core.records import Message
from core.wire import DEFAULT_PORT, admin
from core.wire.completions import ChatCompletionChunk
from core.wire.requests import ChatCompletionRequest, CompletionRequest, ProfileRequest, RoutingTable

from . import errors
from .types import CHAT_EVENT, Completion, CompletionChunk, Health, ModelCard, NetworkView, SwarmOptions

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
RETRY_STATUSES = (429, 503)

ChatInput = str | Sequence[Message | dict[str, Any]]


def _messages(messages: ChatInput) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [m if isinstance(m, dict) else {"role": m.role, "content": m.content} for m in messages]


class Sampling(TypedDict, total=False):
    """What `chat`, `stream_chat` and `complete` take besides their input. An option left out (or None)
    is not sent: the node's default applies. `model` defaults to the first the node hosts itself."""

    model: str | None
    max_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: str | list[str] | None
    seed: int | None
    swarm: SwarmOptions | None  # for the model `swarm`: how to answer, within what budget
    timeout: float | None  # this call's total deadline (default: the client's)


def _checked(shape: type[BaseModel], body: dict[str, Any]) -> dict[str, Any]:
    """A request body as the node will read it: through the node's own model, from the same JSON, so a
    request the node would refuse fails here, with the node's words."""
    try:
        request = shape.model_validate_json(pydantic_core.to_json(body))
    except ValidationError as invalid:
        raise errors.refused_before_sending(invalid) from None
    return request.model_dump(mode="json", exclude_unset=True)


def _plain(shape: type[BaseModel], answer: Any) -> Any:
    """An answer checked against the wire format, handed back as plain JSON."""
    return shape.model_validate(answer).model_dump(mode="json")


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise errors.DeadlineExceeded(f"the call did not finish within its {self.seconds:g} s deadline")
        return left


class AsyncClient:
    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # No httpx timeouts: the total deadline below is the one limit.
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=headers, timeout=None)
        self.timeout = timeout
        self.max_retries = max_retries
        self._default_model: str | None = None

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- plumbing

    @asynccontextmanager
    async def _response(
        self, method: str, path: str, deadline: _Deadline, body: dict[str, Any] | None = None
    ) -> AsyncIterator[httpx.Response]:
        """An open response with a 2xx status, retried where safe; error statuses raise."""
        attempt = 0
        while True:
            request = self._http.build_request(method, path, json=body)
            try:
                with anyio.fail_after(deadline.left()):
                    response = await self._http.send(request, stream=True)
            except TimeoutError:
                raise errors.DeadlineExceeded(
                    f"no answer from {request.url} within {deadline.seconds:g} s"
                ) from None
            except httpx.ConnectError as exc:
                if attempt < self.max_retries:
                    attempt += 1
                    await self._pause(min(0.25 * 2**attempt, deadline.left()))
                    continue
                raise errors.ConnectionFailed(f"could not connect to {self._http.base_url}: {exc}") from None
            except httpx.TransportError as exc:
                raise errors.ConnectionFailed(
                    f"the connection to {self._http.base_url} failed: {exc}"
                ) from None
            try:
                if response.status_code >= 400:
                    with anyio.fail_after(deadline.left()):
                        await response.aread()
                    try:
                        payload = response.json()
                    except ValueError:
                        payload = response.text
                    error = errors.from_response(
                        response.status_code, payload, response.headers.get("retry-after")
                    )
                    wait = error.retry_after if error.retry_after is not None else 0.5 * 2**attempt
                    if (
                        response.status_code in RETRY_STATUSES
                        and attempt < self.max_retries
                        and wait < deadline.left()
                    ):
                        attempt += 1
                        await response.aclose()
                        await self._pause(wait)
                        continue
                    raise error
                yield response
                return
            except TimeoutError:
                raise errors.DeadlineExceeded(
                    f"{request.url} did not finish within {deadline.seconds:g} s"
                ) from None
            finally:
                await response.aclose()

    @staticmethod
    async def _pause(seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))

    async def _json(self, method: str, path: str, body: dict[str, Any] | None, timeout: float | None) -> Any:
        deadline = _Deadline(timeout or self.timeout)
        async with self._response(method, path, deadline, body) as response:
            with anyio.fail_after(deadline.left()):
                await response.aread()
        return response.json()

    async def _chat_events(
        self, body: dict[str, Any], timeout: float | None
    ) -> AsyncIterator[ChatCompletionChunk]:
        deadline = _Deadline(timeout or self.timeout)
        async with self._response("POST", "/v1/chat/completions", deadline, body) as response:
            lines = response.aiter_lines()
            while True:
                try:
                    with anyio.fail_after(deadline.left()):
                        line = await lines.__anext__()
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise errors.DeadlineExceeded(
                        f"the stream did not finish within {deadline.seconds:g} s"
                    ) from None
                except httpx.TransportError as exc:
                    raise errors.ConnectionFailed(
                        f"the stream from {self._http.base_url} broke: {exc}"
                    ) from None
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                event = CHAT_EVENT.validate_json(data)
                if not isinstance(event, ChatCompletionChunk):
                    error = event.error
                    raise errors.APIError(500, error.message, type=error.type, code=error.code)
                yield event

    async def _model(self, model: str | None, timeout: float | None) -> str:
        if model is not None:
            return model
        if self._default_model is None:
            cards = await self.models(timeout=timeout)
            if not cards:
                raise errors.SwarmError("the node serves no models")
            # A model the node hosts itself answers without a hop to another peer.
            local = [c for c in cards if any(h.get("local") for h in c.hosts)]
            self._default_model = (local or cards)[0].id
        return self._default_model

    async def _request(
        self,
        shape: type[ChatCompletionRequest | CompletionRequest],
        fields: dict[str, Any],
        options: Sampling,
    ) -> dict[str, Any]:
        """The body of a generation: `fields` and the options that are set, as the node will read it."""
        sampling = {k: v for k, v in options.items() if v is not None and k not in ("model", "timeout")}
        model = await self._model(options.get("model"), options.get("timeout"))
        return _checked(shape, {"model": model, **fields, **sampling})

    # ---- the API

    async def chat(self, messages: ChatInput, **options: Unpack[Sampling]) -> Completion:
        body = await self._request(ChatCompletionRequest, {"messages": _messages(messages)}, options)
        answer = await self._json("POST", "/v1/chat/completions", body, options.get("timeout"))
        return Completion.from_json(answer)

    async def stream_chat(
        self, messages: ChatInput, **options: Unpack[Sampling]
    ) -> AsyncIterator[CompletionChunk]:
        fields = {"messages": _messages(messages), "stream": True, "stream_options": {"include_usage": True}}
        body = await self._request(ChatCompletionRequest, fields, options)
        async for event in self._chat_events(body, options.get("timeout")):
            yield CompletionChunk.of(event)

    async def complete(self, prompt: str, **options: Unpack[Sampling]) -> Completion:
        body = await self._request(CompletionRequest, {"prompt": prompt}, options)
        answer = await self._json("POST", "/v1/completions", body, options.get("timeout"))
        return Completion.from_json(answer)

    async def models(self, *, timeout: float | None = None) -> list[ModelCard]:
        body = await self._json("GET", "/v1/models", None, timeout)
        return [ModelCard.from_json(card) for card in body["data"]]

    async def health(self, *, timeout: float | None = None) -> Health:
        return Health.from_json(await self._json("GET", "/health", None, timeout))

    async def peers(self, *, timeout: float | None = None) -> NetworkView:
        return NetworkView.from_json(await self._json("GET", "/v1/peers", None, timeout))

    async def routing_table(self, *, full: bool = False, timeout: float | None = None) -> dict[str, Any]:
        """The node's routing table: a summary (version, models' accuracy), or all of it with `full`."""
        path = "/v1/routing/table" + ("?full=true" if full else "")
        shape = RoutingTable if full else admin.RoutingTableSummary
        return _plain(shape, await self._json("GET", path, None, timeout))

    async def install_routing_table(
        self, table: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Give the node a routing table (as `ClusterTable.to_json` writes it); the network takes it up."""
        body = _checked(RoutingTable, table)
        return _plain(admin.TableInstalled, await self._json("PUT", "/v1/routing/table", body, timeout))

    async def accel(self, *, timeout: float | None = None) -> dict[str, Any]:
        """What the node learned about accelerating its models: per task kind, the method and speed-up."""
        return _plain(admin.AccelSummary, await self._json("GET", "/v1/accel", None, timeout))

    async def profile(
        self,
        *,
        per_kind: int = 2,
        seed: int = 0,
        models: list[str] | None = None,
        kinds: list[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run the built-in task mix (all kinds, or `kinds`) through every acceleration method of the node's
        models (all, or `models`); the node learns from it."""
        body = _checked(
            ProfileRequest, {"per_kind": per_kind, "seed": seed, "models": models, "kinds": kinds}
        )
        return _plain(admin.ProfileResult, await self._json("POST", "/v1/accel/profile", body, timeout))

    async def ledger(self, *, limit: int = 10, timeout: float | None = None) -> dict[str, Any]:
        """The node's ledger: its head, its latest `limit` entries, and the reputation table."""
        return _plain(
            admin.LedgerSummary, await self._json("GET", f"/v1/ledger?limit={limit}", None, timeout)
        )

    async def ask_to_be_challenged(self, *, timeout: float | None = None) -> dict[str, bool]:
        """Ask every peer of the node to challenge it on its next beat; per peer, whether it took it."""
        reply = await self._json("POST", "/v1/ledger/challenge-me", None, timeout)
        return dict(_plain(admin.ChallengeAsked, reply)["asked"])

    async def ledger_entries(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        """Every entry of the node's ledger, as stored on its disk, to check for yourself."""
        entries: list[dict[str, Any]] = []
        while True:
            path = f"/v1/ledger/entries?offset={len(entries)}"
            page = admin.LedgerPage.model_validate(await self._json("GET", path, None, timeout))
            entries += page.entries
            if not page.more:
                return entries


class Client:
    """The blocking client: the same calls as AsyncClient, without `await`."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
    ) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_cm.__enter__()
        self._async = AsyncClient(base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._portal is not None:
            self._portal.call(self._async.aclose)
            self._portal_cm.__exit__(None, None, None)
            self._portal = None  # type: ignore[assignment]

    def _iterate(self, chunks: AsyncIterator[CompletionChunk]) -> Iterator[CompletionChunk]:
        try:
            while True:
                try:
                    yield self._portal.call(chunks.__anext__)
                except StopAsyncIteration:
                    return
        finally:
            self._portal.call(chunks.aclose)  # type: ignore[attr-defined]

    def chat(self, messages: ChatInput, **options: Unpack[Sampling]) -> Completion:
        return self._portal.call(partial(self._async.chat, messages, **options))

    def stream_chat(self, messages: ChatInput, **options: Unpack[Sampling]) -> Iterator[CompletionChunk]:
        return self._iterate(self._async.stream_chat(messages, **options))

    def complete(self, prompt: str, **options: Unpack[Sampling]) -> Completion:
        return self._portal.call(partial(self._async.complete, prompt, **options))

    def models(self, *, timeout: float | None = None) -> list[ModelCard]:
        return self._portal.call(partial(self._async.models, timeout=timeout))

    def health(self, *, timeout: float | None = None) -> Health:
        return self._portal.call(partial(self._async.health, timeout=timeout))

    def peers(self, *, timeout: float | None = None) -> NetworkView:
        return self._portal.call(partial(self._async.peers, timeout=timeout))

    def routing_table(self, *, full: bool = False, timeout: float | None = None) -> dict[str, Any]:
        return self._portal.call(partial(self._async.routing_table, full=full, timeout=timeout))

    def install_routing_table(self, table: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        return self._portal.call(partial(self._async.install_routing_table, table, timeout=timeout))

    def accel(self, *, timeout: float | None = None) -> dict[str, Any]:
        return self._portal.call(partial(self._async.accel, timeout=timeout))

    def profile(
        self,
        *,
        per_kind: int = 2,
        seed: int = 0,
        models: list[str] | None = None,
        kinds: list[str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        call = partial(
            self._async.profile, per_kind=per_kind, seed=seed, models=models, kinds=kinds, timeout=timeout
        )
        return self._portal.call(call)

    def ledger(self, *, limit: int = 10, timeout: float | None = None) -> dict[str, Any]:
        return self._portal.call(partial(self._async.ledger, limit=limit, timeout=timeout))

    def ask_to_be_challenged(self, *, timeout: float | None = None) -> dict[str, bool]:
        return self._portal.call(partial(self._async.ask_to_be_challenged, timeout=timeout))

    def ledger_entries(self, *, timeout: float | None = None) -> list[dict[str, Any]]:
        return self._portal.call(partial(self._async.ledger_entries, timeout=timeout))
