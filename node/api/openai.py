"""The node's OpenAI-compatible HTTP API.

Every failure leaves as an OpenAI-style body, {"error": {"message", "type",
"param", "code"}}, with the status a client library expects: 400 for a bad
request, 401 for a wrong key, 404 for an unknown model, 413 for an oversized
body, 429 (+ Retry-After) when a model's queue is full, 503 (+ Retry-After)
while an engine restarts.
"""

from __future__ import annotations

import dataclasses
import hmac
import itertools
import json
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Literal

import trio
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from accel.tasks import KINDS, mix
from consensus import LedgerEntry
from core import __version__
from core.records import (
    SWARM_MODEL,
    Generation,
    GenerationRequest,
    Message,
    ModelInfo,
    ModelLoad,
    Usage,
    to_wire,
)
from routing.router import RouteDecision
from routing.selection import Budget
from routing.table import ClusterTable

from ..accel import Accelerator, profile
from ..engines.base import ContextLengthExceeded, EngineError, EngineUnavailable, RequestRejected
from ..hosting import RESTART_RETRY_AFTER_S, HostedModel, InvalidRequest, QueueFull
from ..ledger import LedgerService
from ..metrics import NodeMetrics
from ..network import NetworkService, RemoteModel
from ..rounds import Answerer, Mode, RoundError, RoundResult, RoundService
from ..router import Router, experts
from ..transport import PeerUnavailable, RemoteError, RequestTimeout

DEFAULT_MAX_TOKENS = 256
ROUND_EXPERTS = 3  # answerers in a consensus or vote round unless the request says otherwise
CHARS_PER_TOKEN = 4  # to estimate a prompt's tokens before any engine has tokenised it
FALLBACK_REASON = "answers: none is predicted right, and it ranks best of those within budget"


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


# ---- request bodies: what OpenAI clients send; unknown fields are ignored as OpenAI's servers do


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart]

    def record(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return Message("system" if self.role == "developer" else self.role, text)


class StreamOptions(BaseModel):
    include_usage: bool = False


class SwarmOptions(BaseModel):
    """The `swarm` object of a request to the model `swarm`: how to answer, and the caller's budget."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["route", "consensus", "vote"] = "consensus"
    experts: int | None = Field(
        default=None, ge=1, le=16, description="most experts to ask (default: 1 to route, 3 for a round)"
    )
    max_latency_s: float | None = Field(default=None, gt=0, description="seconds until the answer is back")
    max_cost: float | None = Field(default=None, ge=0, description="in the unit of the announced prices")

    def budget(self) -> Budget:
        return Budget(
            max_experts=self.experts or (1 if self.mode == "route" else ROUND_EXPERTS),
            max_latency_s=math.inf if self.max_latency_s is None else self.max_latency_s,
            max_cost=math.inf if self.max_cost is None else self.max_cost,
        )


class SamplingFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1, description="only one choice per request is supported")
    stream: bool = False
    stream_options: StreamOptions | None = None
    swarm: SwarmOptions | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    def question(self) -> str:
        raise NotImplementedError

    def _sampling(self, max_tokens: int | None) -> dict[str, Any]:
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return {
            "model": self.model,
            "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "stop": stop,
            "seed": self.seed,
        }


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def record(self) -> GenerationRequest:
        return GenerationRequest(
            messages=tuple(m.record() for m in self.messages),
            **self._sampling(self.max_completion_tokens or self.max_tokens),
        )

    def question(self) -> str:
        """What the router places among its clusters: the last thing the user said."""
        return next((m.record().content for m in reversed(self.messages) if m.role == "user"), "")


class CompletionRequest(SamplingFields):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("exactly one prompt per request is supported")
        return value

    def record(self) -> GenerationRequest:
        return GenerationRequest(prompt=self.question(), **self._sampling(self.max_tokens))

    def question(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


# ---- the app


class NodeState:
    """What the API serves: the hosted models, the peer network (if any) and the node's metrics."""

    def __init__(
        self,
        models: dict[str, HostedModel],
        metrics: NodeMetrics,
        api_keys: tuple[str, ...] = (),
        network: NetworkService | None = None,
        router: Router | None = None,
        rounds: RoundService | None = None,
        ledger: LedgerService | None = None,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.models = models
        self.accelerator = accelerator
        self.router = router
        self.rounds = rounds
        self.ledger = ledger
        self.metrics = metrics
        self.api_keys = tuple(k.encode() for k in api_keys)
        self.network = network
        self.started = time.time()

    @property
    def node_id(self) -> str | None:
        return self.network.transport.peer_id if self.network else None

    def model(self, name: str) -> HostedModel | RemoteModel:
        """The local model of that name, else the peers that host it (forwarding)."""
        hosted = self.models.get(name)
        if hosted is not None:
            return hosted
        remote = self.network.remote(name) if self.network else None
        if remote is not None:
            return remote
        raise APIError(
            404,
            f"model {name!r} is not served in this network; available: {', '.join(self.model_names())}",
            code="model_not_found",
            param="model",
        )

    def model_names(self) -> list[str]:
        remote = self.network.table.models() if self.network else {}
        return sorted(set(self.models) | set(remote))

    def _may_answer(self, peer_id: str | None) -> bool:
        assert self.ledger is not None
        return self.ledger.may(peer_id or self.ledger.identity.peer_id, "answer")

    async def route(self, question: str, request: GenerationRequest, options: SwarmOptions) -> RouteDecision:
        if self.router is None:
            raise APIError(404, "this node does not route: no model 'swarm' here", code="model_not_found")
        if options.mode != "route" and self.rounds is None:
            raise APIError(
                400,
                f"this node runs no rounds: mode {options.mode!r} is unavailable; use mode 'route'",
                code="mode_unsupported",
                param="swarm.mode",
            )
        table = self.network.table if self.network else None
        if self.ledger is None:
            in_reach = experts(self.models, table)
        else:
            in_reach = experts(self.models, table, self._may_answer)
        if not in_reach and self.ledger is not None and experts(self.models, table):
            raise APIError(
                503,
                "no expert has a say yet: the peers hosting models have not passed their "
                "proof-of-capability challenges (see `swarm ledger`)",
                code="no_eligible_expert",
            )
        decision = await self.router.decide(
            question,
            in_reach,
            options.budget(),
            prompt_tokens=math.ceil(len(question) / CHARS_PER_TOKEN),
            max_tokens=request.max_tokens,
        )
        if decision.best is None:
            why = "; ".join(f"{name}: {reason}" for name, reason in decision.selection.reasons.items())
            raise APIError(
                400, f"no expert fits the budget ({why})", code="budget_unsatisfiable", param="swarm"
            )
        return decision


def _usage_json(generation: Generation) -> dict[str, int]:
    u = generation.usage
    return {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
    }


def _sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def _engine_error(error: Exception) -> APIError:
    if isinstance(error, QueueFull):
        return APIError(
            429,
            str(error),
            type="rate_limit_error",
            code="queue_full",
            headers={"Retry-After": str(error.retry_after)},
        )
    if isinstance(error, InvalidRequest):
        return APIError(400, str(error), param=error.param)
    if isinstance(error, ContextLengthExceeded):
        return APIError(400, str(error), code="context_length_exceeded", param="messages")
    if isinstance(error, RequestRejected):
        return APIError(400, f"the engine refused the request: {error}", code="rejected_by_engine")
    if isinstance(error, EngineUnavailable):
        return APIError(
            503,
            str(error),
            type="service_unavailable",
            code="engine_unavailable",
            headers={"Retry-After": str(RESTART_RETRY_AFTER_S)},
        )
    return APIError(500, f"the engine failed: {error}", type="server_error", code="engine_error")


def create_app(state: NodeState, *, max_request_bytes: int = 4 << 20) -> ASGIApp:
    """The API as an ASGI app, guarded by the key check and the size limit."""
    app = FastAPI(
        title="swarm node",
        version=__version__,
        description="An OpenAI-compatible endpoint of one node of the swarm-inference network.",
    )
    app.state.node = state
    metrics = state.metrics

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return APIError(
                400,
                f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}",
                code="invalid_json",
            ).response()
        location = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(location) or None
        message = first.get("msg", "invalid request")
        if first.get("type") == "missing":
            message = f"missing required field {param!r}"
        elif param:
            message = f"invalid {param!r}: {message}"
        return APIError(400, message, param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        return APIError(exc.status_code, str(exc.detail), type=kind).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return APIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error").response()

    async def _run(endpoint: str, body: SamplingFields, chat: bool, http_request: Request) -> Response:
        request = body.record()  # type: ignore[attr-defined]
        report: dict[str, Any] | None = None
        if body.model == SWARM_MODEL:
            options = body.swarm or SwarmOptions()
            started = time.perf_counter()
            decision = await state.route(body.question(), request, options)
            elapsed = time.perf_counter() - started
            metrics.route_decision.observe(elapsed)
            report = _route_report(decision, options, elapsed, state.node_id)
            if options.mode != "route":
                return await _round(body, options.mode, chat, request, decision, report)
            request = dataclasses.replace(request, model=decision.best.model)  # type: ignore[union-attr]
            metrics.routed.labels(request.model).inc()
        elif body.swarm is not None:
            raise APIError(400, f"'swarm' options apply only to the model {SWARM_MODEL!r}", param="swarm")
        hosted = state.model(request.model)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        try:
            if body.stream:
                stream = await hosted.stream(request)
                metrics.requests.labels(hosted.name, endpoint, "200").inc()
                return StreamingResponse(
                    _events(stream, hosted.name, chat, include_usage, report),
                    media_type="text/event-stream",
                    headers={"Cache-Control": "no-cache"},
                )
            generation = await _unless_disconnected(http_request, hosted.generate(request))
            if generation is None:
                return Response(status_code=499)  # nobody is left to read it
        except (EngineError, QueueFull, InvalidRequest) as error:
            api_error = _engine_error(error)
            metrics.requests.labels(hosted.name, endpoint, str(api_error.status)).inc()
            if isinstance(error, QueueFull):
                metrics.errors.labels(hosted.name, "QueueFull").inc()
            raise api_error from error
        metrics.requests.labels(hosted.name, endpoint, "200").inc()
        body_json = _completion_json(generation, hosted.name, chat)
        if report is not None:
            body_json["swarm"] = report
        return JSONResponse(body_json)

    async def _round(
        body: SamplingFields,
        mode: Mode,
        chat: bool,
        request: GenerationRequest,
        decision: RouteDecision,
        routed: dict,
    ) -> Response:
        """A consensus or vote round over the experts the router chose; the winner answers."""
        assert state.rounds is not None  # state.route refuses round modes without it
        answerers = [Answerer(e.model, e.peer_id or state.rounds.peer_id) for e in decision.team]
        try:
            result = await state.rounds.run(request, body.question(), answerers, mode)
        except RoundError as exc:
            raise APIError(503, str(exc), type="service_unavailable", code="no_answer") from exc
        for phase, seconds in result.timings_s.items():
            metrics.round_phase.labels(phase).observe(seconds)
        winner = result.answer
        assert winner is not None
        reveal = winner.reveal.body
        usage = reveal.get("usage") or {}
        generation = Generation(
            winner.text,
            reveal.get("finish_reason", "stop"),
            Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
        )
        report = _round_report(result, routed)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                _events(_Whole(generation), winner.model, chat, include_usage, report),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        return JSONResponse({**_completion_json(generation, winner.model, chat), "swarm": report})

    async def _events(
        stream: Any, model: str, chat: bool, include_usage: bool, report: dict[str, Any] | None
    ) -> AsyncIterator[bytes]:
        ident, created = _new_id(chat), int(time.time())
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(choice: dict[str, Any]) -> dict[str, Any]:
            nonlocal report
            body = {"id": ident, "object": kind, "created": created, "model": model, "choices": [choice]}
            if report is not None:  # the first chunk says who answers and why
                body["swarm"], report = report, None
            return body

        try:
            if chat:
                yield _sse(
                    chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
                )
            async for text in stream:
                piece = {"content": text} if chat else None
                choice = {"index": 0, "delta": piece} if chat else {"index": 0, "text": text}
                yield _sse(chunk({**choice, "finish_reason": None}))
            final: Generation = stream.result
            end = {"index": 0, "delta": {}} if chat else {"index": 0, "text": ""}
            yield _sse(chunk({**end, "finish_reason": final.finish_reason}))
            if include_usage:
                yield _sse(
                    {
                        "id": ident,
                        "object": kind,
                        "created": created,
                        "model": model,
                        "choices": [],
                        "usage": _usage_json(final),
                    }
                )
            yield _sse("[DONE]")
        except EngineError as error:
            # Headers are gone already: the error travels as an event, as OpenAI's servers do.
            api_error = _engine_error(error)
            yield _sse(
                {"error": {"message": api_error.message, "type": api_error.type, "code": api_error.code}}
            )
        finally:
            await stream.aclose()

    @app.post(
        "/v1/chat/completions", summary="Chat completion (streams by server-sent events when stream=true)"
    )
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        return await _run("chat", body, True, request)

    @app.post("/v1/completions", summary="Text completion")
    async def completions(body: CompletionRequest, request: Request) -> Response:
        return await _run("completion", body, False, request)

    @app.get("/v1/models", summary="Models served by this node")
    async def list_models() -> dict[str, Any]:
        cards = [_model_card(state, name) for name in state.model_names()]
        if state.router is not None:
            cards.append(_swarm_card(state))
        return {"object": "list", "data": cards}

    @app.get("/v1/models/{name:path}", summary="One model, with every node that hosts it")
    async def get_model(name: str) -> dict[str, Any]:
        if name == SWARM_MODEL and state.router is not None:
            return _swarm_card(state)
        state.model(name)  # 404 for a model nobody hosts
        return _model_card(state, name)

    def _router() -> Router:
        if state.router is None:
            raise APIError(404, "this node does not route", code="not_found")
        return state.router

    @app.get("/v1/routing/table", summary="The routing table this node uses (full=true: all of it)")
    async def routing_table(full: bool = False) -> Response:
        table = _router().table
        if table is None:
            raise APIError(
                404, "this node holds no routing table yet: run `swarm calibrate`", code="no_routing_table"
            )
        if full:
            return Response(table.to_json(), media_type="application/json")
        return JSONResponse(_table_summary(table))

    @app.put("/v1/routing/table", summary="Install a routing table here; the network takes it up")
    async def install_routing_table(request: Request) -> dict[str, Any]:
        _router()
        try:
            table = ClusterTable.from_json((await request.body()).decode())
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            why = f"missing field {exc.args[0]!r}" if isinstance(exc, KeyError) else str(exc)
            raise APIError(400, f"not a valid routing table: {why}", code="invalid_routing_table") from exc
        # Through the network when there is one, so the peers hear of it at once.
        adopted = state.network.adopt_table(table) if state.network is not None else _router().adopt(table)
        current = _router().table
        assert current is not None
        return {"adopted": adopted, "current": _table_summary(current)}

    def _accelerator() -> Accelerator:
        if state.accelerator is None:
            raise APIError(404, "this node learns no acceleration", code="not_found")
        return state.accelerator

    @app.get("/v1/accel", summary="What the node learned: per task kind, the method it picks, the speed-up")
    async def accel_summary() -> dict[str, Any]:
        summary = _accelerator().summary()
        summary["methods"] = {
            name: [
                {"name": m.name, "lossless": m.lossless, "summary": m.summary}
                for m in hosted.engine.methods()
            ]
            for name, hosted in state.models.items()
        }
        return summary

    @app.post("/v1/accel/profile", summary="Run a built-in task mix through every method: a first history")
    async def accel_profile(body: ProfileBody) -> dict[str, Any]:
        accelerator = _accelerator()
        unknown = sorted(set(body.models or ()) - set(state.models))
        if unknown:
            raise APIError(
                404, f"not hosted here: {', '.join(unknown)}", code="model_not_found", param="models"
            )
        models = {n: m for n, m in state.models.items() if not body.models or n in body.models}
        started = time.perf_counter()
        found = await profile(models, accelerator, mix(body.per_kind, body.seed, tuple(body.kinds)))
        return {
            "seconds": time.perf_counter() - started,
            "methods": [p.to_json() for p in found],
            "records": len(accelerator.history),
        }

    def _ledger() -> LedgerService:
        if state.ledger is None:
            raise APIError(404, "this node keeps no ledger", code="not_found")
        return state.ledger

    @app.get("/v1/ledger", summary="The ledger's head, its latest entries and the reputation table")
    async def ledger_summary(limit: int = Query(10, ge=0, le=1000)) -> dict[str, Any]:
        return _ledger_summary(_ledger(), limit)

    @app.get("/v1/ledger/entries", summary="The ledger's entries as stored on disk, each chain in order")
    async def ledger_entries(
        offset: int = Query(0, ge=0), limit: int = Query(500, ge=1, le=5000)
    ) -> dict[str, Any]:
        stored = list(itertools.islice(_ledger().ledger.stored(), offset, offset + limit + 1))
        return {"entries": stored[:limit], "offset": offset, "more": len(stored) > limit}

    @app.post("/v1/peers/{peer_id}/ping", summary="Round trips to a peer over libp2p (diagnostics)")
    async def ping(
        peer_id: str, size: int = Query(1024, ge=0, le=4 << 20), count: int = Query(10, ge=1, le=10000)
    ):
        if state.network is None or state.network.table.get(peer_id) is None:
            raise APIError(404, f"peer {peer_id!r} is not in this node's peer table", code="peer_not_found")
        started = time.perf_counter()
        try:
            times = await state.network.ping(peer_id, size, count)
        except (PeerUnavailable, RequestTimeout, RemoteError) as exc:
            raise APIError(503, f"peer {peer_id} did not answer: {exc}", type="service_unavailable") from exc
        elapsed = time.perf_counter() - started
        return {"size": size, "count": count, "rtt_ms": times, "requests_per_second": count / elapsed}

    @app.get("/v1/peers", summary="This node and its peer table")
    async def peers() -> dict[str, Any]:
        if state.network is None:
            return {"self": None, "peers": []}
        network = state.network
        now = time.monotonic()
        return {
            "self": to_wire(network.announcement()),
            "peers": [
                {
                    **to_wire(entry.info),
                    "rtt_ms": entry.rtt_ms,
                    "seen_s_ago": round(now - entry.last_seen, 1),
                    "state": network.transport.peer_states().get(entry.info.peer_id, "unknown"),
                }
                for entry in network.table.peers()
            ],
        }

    @app.get("/health", summary="Liveness and the state of every model")
    async def health() -> JSONResponse:
        states = {name: m.state for name, m in state.models.items()}
        ready = all(s == "ready" for s in states.values())
        body = {
            "status": "ok" if ready else "degraded",
            "version": __version__,
            "node_id": state.node_id,
            "uptime_s": round(time.time() - state.started, 1),
            "models": states,
            "peers": len(state.network.table.peers()) if state.network else 0,
        }
        return JSONResponse(body)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    return Guard(app, state.api_keys, max_request_bytes)


class Guard:
    """ASGI middleware for /v1: the API key check and the request size limit.

    Plain ASGI rather than an HTTP middleware so streamed responses and client
    disconnects pass through untouched.
    """

    def __init__(self, app: ASGIApp, api_keys: tuple[bytes, ...], max_request_bytes: int) -> None:
        self.app, self.api_keys, self.max_request_bytes = app, api_keys, max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.api_keys and not _authorized(headers.get("authorization", ""), self.api_keys):
            error = APIError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                type="authentication_error",
                code="invalid_api_key",
            )
            await error.response()(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_request_bytes:
            await self._too_large(scope, receive, send)
            return
        if scope["method"] == "POST" and "json" not in headers.get("content-type", ""):
            # The body of every /v1 POST is JSON whatever the client labels it (curl -d says form data).
            scope = {
                **scope,
                "headers": [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                + [(b"content-type", b"application/json")],
            }
        received = 0

        async def counted_receive() -> ASGIMessage:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_request_bytes:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = APIError(
            413,
            f"the request body is larger than this node accepts ({self.max_request_bytes} bytes)",
            code="request_too_large",
        )
        await error.response()(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


async def _unless_disconnected(request: Request, work: Awaitable[Generation]) -> Generation | None:
    """Await `work`, cancelling it if the client hangs up first (then None)."""
    result: list[Generation] = []
    failure: Exception | None = None
    async with trio.open_nursery() as nursery:

        async def watch() -> None:
            # The body is read already, so the next ASGI message is the client hanging up.
            if (await request.receive())["type"] == "http.disconnect":
                nursery.cancel_scope.cancel()

        nursery.start_soon(watch)
        try:
            result.append(await work)
        except Exception as exc:  # raised outside the nursery, so it isn't wrapped in an exception group
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return result[0] if result else None


def _authorized(authorization: str, keys: tuple[bytes, ...]) -> bool:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    presented = token.strip().encode()
    # Compare against every key so the time taken doesn't tell which one nearly matched.
    return any([hmac.compare_digest(presented, key) for key in keys])


def _new_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex


def _completion_json(generation: Generation, model: str, chat: bool) -> dict[str, Any]:
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": generation.text}}
    else:
        choice = {"index": 0, "text": generation.text, "logprobs": None}
    choice["finish_reason"] = generation.finish_reason
    return {
        "id": _new_id(chat),
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": _usage_json(generation),
    }


class _Whole:
    """A finished answer in the shape of a stream (one piece), so a round's answer streams like any other."""

    def __init__(self, generation: Generation) -> None:
        self.result = generation
        self._pieces = [generation.text]

    def __aiter__(self) -> _Whole:
        return self

    async def __anext__(self) -> str:
        if not self._pieces:
            raise StopAsyncIteration
        return self._pieces.pop()

    async def aclose(self) -> None:
        self._pieces.clear()


def _round_report(result: RoundResult, routed: dict[str, Any]) -> dict[str, Any]:
    """The provenance of a round's answer: who answered, who judged, every vote and signature, and timings."""
    ranking, winner = result.ranking, result.answer
    assert winner is not None

    def cid(index: int) -> str:
        return f"c{index}"

    return {
        "mode": result.mode,
        "round_id": result.round_id,
        "answered_by": {"model": winner.model, "peer_id": winner.peer_id, "candidate": cid(winner.cid)},
        "degraded": result.degraded,
        "confidence": ranking.confidence if ranking else None,
        # The strongest single candidate, whether or not others agreed with it (the winner pools agreement).
        "bt_winner": cid(ranking.winner) if ranking else None,
        "majority": result.majority_answer,
        "candidates": [
            {
                "id": cid(c.cid),
                "model": c.model,
                "peer_id": c.peer_id,
                "answer": c.text,
                "bt_score": ranking.strengths[c.cid] if ranking else None,
                "good": result.good.get(c.cid, (0, 0))[0],
                "checks": result.good.get(c.cid, (0, 0))[1],
                "commitment": c.commitment.to_wire(),
                "reveal_signature": c.reveal.signature,
            }
            for c in result.candidates
        ],
        "votes": [
            {"judge": v.judge, "a": cid(v.first), "b": cid(v.second), "outcome": v.outcome}
            for v in result.votes
        ],
        "judges": [{"peer_id": judge, "weight": weight} for judge, weight in result.judges.items()],
        "ballots": [ballot.to_wire() for ballot in result.ballots],
        "missed": [{"peer_id": m.peer_id, "phase": m.phase, "reason": m.reason} for m in result.misses],
        "timings_ms": {
            "routing": routed["decision_ms"],
            **{phase: round(seconds * 1000, 3) for phase, seconds in result.timings_s.items()},
        },
        "routing": routed,
    }


def _table_summary(table: ClusterTable) -> dict[str, Any]:
    return {
        "version": table.version,
        "created_at": table.created_at,
        "embedder": table.embedder,
        "clusters": table.num_clusters,
        "models": {
            name: {"accuracy": _finite(float(table.overall[i])), "questions": int(table.counts[:, i].sum())}
            for i, name in enumerate(table.models)
        },
    }


class ProfileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    per_kind: int = Field(default=2, ge=1, le=50, description="tasks of every kind in the mix")
    seed: int = 0
    models: list[str] | None = Field(default=None, description="models to profile (default: all here)")
    kinds: list[str] = Field(default=list(KINDS), description=f"task kinds, among {', '.join(KINDS)}")

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        unknown = sorted(set(kinds) - set(KINDS))
        if unknown or not kinds:
            raise ValueError(f"unknown task kinds {unknown}; known: {', '.join(KINDS)}")
        return kinds


def _ledger_summary(service: LedgerService, limit: int) -> dict[str, Any]:
    ledger = service.ledger
    book, rules = ledger.book, ledger.rules
    return {
        "head": ledger.head,
        "entries": len(ledger),
        "chains": ledger.heads(),
        "waiting": len(ledger.waiting()),
        "rejected": service.rejected,
        "bootstrapping": book.bootstrapping(rules),
        "recent": [_entry_summary(e) for e in ledger.recent(limit)],
        "reputation": [
            {
                "peer_id": peer,
                "score": book.score(peer),
                "free": book.free(peer),
                "eligible": book.eligible(peer, "answer", rules),
            }
            for peer in sorted(book.peers(), key=lambda p: -book.score(p))
        ],
    }


def _entry_summary(entry: LedgerEntry) -> dict[str, Any]:
    r = entry.record
    summary: dict[str, Any] = {
        "gateway": entry.gateway,
        "seq": entry.seq,
        "at": entry.at,
        "type": entry.type,
        "digest": entry.digest,
    }
    if entry.type == "round":
        outcome = entry.round_outcome()
        summary |= {
            "round": r["round"],
            "candidates": len(r["candidates"]),
            "judges": len(r["ballots"]),
            "winner": None if r["winner"] is None else r["candidates"][r["winner"]]["peer"],
            "missed": sum(outcome.missed.values()) + sum(outcome.malformed.values()),
        }
    else:
        summary |= {
            "peer": r["peer"],
            "right": sum(a["correct"] for a in r["answers"]),
            "asked": len(r["answers"]),
        }
    return summary


def _swarm_card(state: NodeState) -> dict[str, Any]:
    """The network as one model: whoever the router picks answers."""
    table = state.router.table if state.router else None
    return {
        "id": SWARM_MODEL,
        "object": "model",
        "created": int(state.started),
        "owned_by": "swarm",
        "backend": "router",
        "chat": True,
        "local": True,
        "state": "ready",
        "routing_table": table.version if table else None,
        "hosts": [],
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no infinity: "unbounded" or "unknown"


def _route_report(
    decision: RouteDecision, options: SwarmOptions, elapsed_s: float, node_id: str | None
) -> dict[str, Any]:
    """What the router chose and why, for the `swarm` object of the response."""
    best = decision.best
    assert best is not None
    scores = {s.name: s for s in decision.scores}
    selection = decision.selection
    return {
        "mode": options.mode,
        "answered_by": {"model": best.model, "peer_id": best.peer_id or node_id},
        "table_version": decision.table_version,
        "decision_ms": round(elapsed_s * 1000, 3),
        # Every expert is scored on the same clusters: the ones nearest the question, with their weights.
        "basis": decision.scores[0].basis,
        "clusters": [[cluster, p] for cluster, p in decision.scores[0].clusters],
        "budget": {
            "experts": options.experts,
            "max_latency_s": options.max_latency_s,
            "max_cost": options.max_cost,
        },
        "selection": {
            "chosen": [c.name for c in selection.chosen],
            "quality": selection.quality,
            "latency_s": _finite(selection.latency_s),
            "cost": _finite(selection.cost),
            "search": "exact" if selection.exact else "greedy",
        },
        "experts": [
            {
                "model": c.name,
                "peer_id": decision.experts[c.name].peer_id or node_id,
                "score": scores[c.name].score,
                "quality": c.quality,
                "calibrated": scores[c.name].calibrated,
                "predicted_latency_s": _finite(c.latency_s),
                "predicted_cost": _finite(c.cost),
                "reason": FALLBACK_REASON
                if c.name == best.model and c not in selection.chosen
                else str(selection.reasons[c.name]),
            }
            for c in decision.candidates
        ],
    }


def _host(
    info: ModelInfo, peer_id: str | None, load: ModelLoad, local: bool, url: str | None
) -> dict[str, Any]:
    return {
        "peer_id": peer_id,
        "local": local,
        "http_url": url,
        "backend": info.backend,
        "context_length": info.context_length,
        "chat": info.chat,
        "parallel": info.parallel,
        "hardware": info.hardware,
        "tokens_per_second": info.tokens_per_second,
        "running": load.running,
        "waiting": load.waiting,
    }


def _model_card(state: NodeState, name: str) -> dict[str, Any]:
    """One model of the network: its description, and every node that runs it (this one first)."""
    hosts = []
    local = state.models.get(name)
    if local is not None:
        url = state.network.http_url if state.network else None
        hosts.append(
            _host(local.info, state.node_id, ModelLoad(local.running, local.queue.waiting), True, url)
        )
    if state.network is not None:
        for entry in state.network.table.hosts_for(name):
            info = entry.model(name)
            assert info is not None
            load = entry.info.load.get(name, ModelLoad())
            hosts.append(_host(info, entry.info.peer_id, load, False, entry.info.http_url))
    first = hosts[0]
    return {
        "id": name,
        "object": "model",
        "created": int(state.started),
        "owned_by": "swarm",
        "backend": first["backend"],
        "context_length": first["context_length"],
        # vLLM's name for the context length, which OpenAI-compatible clients probe
        "max_model_len": first["context_length"],
        "chat": first["chat"],
        "tokens_per_second": first["tokens_per_second"],
        "local": local is not None,
        "state": local.state if local is not None else "remote",
        "hosts": hosts,
    }
