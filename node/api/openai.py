"""The OpenAI-compatible endpoints: chat and text completions, whole or streamed, and the models."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import trio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel

from core.records import (
    GENERAL,
    SWARM_MODEL,
    Domain,
    FinishReason,
    Generation,
    GenerationRequest,
    ModelInfo,
    ModelLoad,
    Usage,
)
from core.wire.completions import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatDelta,
    Host,
    ModelCard,
    ModelList,
    SwarmModelCard,
    TextChoice,
    TextChunkChoice,
    TextCompletion,
    TextCompletionChunk,
)
from core.wire.completions import Usage as UsageJSON
from core.wire.errors import ErrorResponse
from core.wire.provenance import RoundReport, RouteReport
from core.wire.requests import ChatCompletionRequest, CompletionRequest, SwarmOptions
from routing.router import RouteDecision

from ..engines.base import EngineError
from ..failures import SERVED
from ..hosting import QueueFull
from ..rounds import Answerer, Mode, RoundError
from .errors import GUARDED, APIError, documented
from .provenance import round_report, route_report
from .state import Node, NodeState

router = APIRouter(responses=documented(*GUARDED))
GENERATION_ERRORS = documented(400, 404, 429, 500, 503)
DONE = "[DONE]"  # the last event of a stream
# What a streamed answer's events hold: the app adds their schemas to the document (app.py).
STREAM_EVENTS: tuple[type[BaseModel], ...] = (ChatCompletionChunk, TextCompletionChunk, ErrorResponse)


def _streamed(chunk: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """The other form of a 200 answer: with "stream": true, server-sent events, each `data: ` and a
    `chunk` (or an ErrorResponse if the answer fails after the headers were sent), then `data: [DONE]`."""
    event = {"oneOf": [{"$ref": f"#/components/schemas/{m.__name__}"} for m in (chunk, ErrorResponse)]}
    data = {"type": "string", "contentMediaType": "application/json", "contentSchema": event}
    return {
        200: {
            "content": {
                "text/event-stream": {
                    "itemSchema": {
                        "type": "object",
                        "required": ["data"],
                        "properties": {"data": {"anyOf": [{"const": DONE}, data]}},
                    }
                }
            }
        }
    }


def _generating(path: str, summary: str, answer: type[BaseModel], chunk: type[BaseModel]) -> Any:
    """The route of a generation: the answer whole as JSON, or streamed with "stream": true."""
    return router.post(
        path, summary=summary, response_model=answer, responses={**_streamed(chunk), **GENERATION_ERRORS}
    )


@_generating("/v1/chat/completions", "Chat completion", ChatCompletion, ChatCompletionChunk)
async def chat_completions(body: ChatCompletionRequest, request: Request, node: Node) -> Response:
    return await _answer(node, "chat", body, request)


@_generating("/v1/completions", "Text completion", TextCompletion, TextCompletionChunk)
async def completions(body: CompletionRequest, request: Request, node: Node) -> Response:
    return await _answer(node, "completion", body, request)


@router.get("/v1/models", summary="Models served in this network, and the model swarm")
async def list_models(node: Node) -> ModelList:
    cards: list[ModelCard | SwarmModelCard] = [_model_card(node, name) for name in node.model_names()]
    if node.router is not None:
        cards.append(_swarm_card(node))
    return ModelList(data=cards)


@router.get(
    "/v1/models/{name:path}", summary="One model, with every node that hosts it", responses=documented(404)
)
async def get_model(name: str, node: Node) -> ModelCard | SwarmModelCard:
    if name == SWARM_MODEL and node.router is not None:
        return _swarm_card(node)
    node.model(name)  # 404 for a model nobody hosts
    return _model_card(node, name)


async def _answer(
    node: NodeState, endpoint: str, body: ChatCompletionRequest | CompletionRequest, http_request: Request
) -> Response:
    chat = isinstance(body, ChatCompletionRequest)
    metrics = node.metrics
    request = body.record()
    report: RouteReport | None = None
    if body.model == SWARM_MODEL:
        options = body.swarm or SwarmOptions()
        started = time.perf_counter()
        routed = await node.route(body.question(), request, options)
        decision = routed.decision
        elapsed = time.perf_counter() - started
        metrics.route_decision.observe(elapsed)
        report = route_report(
            decision, options, elapsed, node.node_id, domain=routed.domain, without_say=routed.without_say
        )
        if options.mode != "route":
            return await _round(node, body, options.mode, request, decision, report, routed.domain)
        request = dataclasses.replace(request, model=decision.best.model)  # type: ignore[union-attr]
        metrics.routed.labels(request.model).inc()
    elif body.swarm is not None:
        raise APIError(400, f"'swarm' options apply only to the model {SWARM_MODEL!r}", param="swarm")
    hosted = node.model(request.model)
    try:
        if body.stream:
            stream = await hosted.stream(request)
            metrics.requests.labels(hosted.name, endpoint, "200").inc()
            return _event_stream(_events(stream, hosted.name, chat, body.include_usage, report))
        generation = await _unless_disconnected(http_request, hosted.generate(request))
        if generation is None:
            return Response(status_code=499)  # nobody is left to read it
    except SERVED as error:
        api_error = APIError.of(error)
        metrics.requests.labels(hosted.name, endpoint, str(api_error.status)).inc()
        if isinstance(error, QueueFull):
            metrics.errors.labels(hosted.name, "QueueFull").inc()
        raise api_error from error
    metrics.requests.labels(hosted.name, endpoint, "200").inc()
    return _whole(generation, hosted.name, chat, report)


async def _round(
    node: NodeState,
    body: ChatCompletionRequest | CompletionRequest,
    mode: Mode,
    request: GenerationRequest,
    decision: RouteDecision,
    routed: RouteReport,
    domain: Domain | None,
) -> Response:
    """A consensus or vote round over the experts the router chose; the winner answers."""
    assert node.rounds is not None  # node.route refuses round modes without it
    chat = isinstance(body, ChatCompletionRequest)
    answerers = [Answerer(e.model, e.peer_id or node.rounds.peer_id) for e in decision.team]
    try:
        result = await node.rounds.run(
            request, body.question(), answerers, mode, routing=routed, domain=domain or GENERAL
        )
    except RoundError as exc:
        raise APIError(503, str(exc), type="service_unavailable", code="no_answer") from exc
    for phase, seconds in result.timings_s.items():
        node.metrics.round_phase.labels(phase).observe(seconds)
    winner = result.answer
    assert winner is not None
    reveal = winner.reveal.body
    usage = reveal.get("usage") or {}
    generation = Generation(
        winner.text,
        reveal.get("finish_reason", "stop"),
        Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
    )
    report = round_report(result, routed)
    if body.stream:
        return _event_stream(_events(_Whole(generation), winner.model, chat, body.include_usage, report))
    return _whole(generation, winner.model, chat, report)


def _whole(
    generation: Generation, model: str, chat: bool, report: RouteReport | RoundReport | None
) -> JSONResponse:
    common = {
        "id": _new_id(chat),
        "created": int(time.time()),
        "model": model,
        "usage": UsageJSON.of(generation.usage),
        "swarm": report,
    }
    if chat:
        message = AssistantMessage(content=generation.text)
        answer: BaseModel = ChatCompletion(
            choices=[ChatChoice(message=message, finish_reason=generation.finish_reason)], **common
        )
    else:
        answer = TextCompletion(
            choices=[TextChoice(text=generation.text, finish_reason=generation.finish_reason)], **common
        )
    return JSONResponse(answer.model_dump(mode="json"))


def _event_stream(events: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _sse(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


async def _events(
    stream: Any, model: str, chat: bool, include_usage: bool, report: RouteReport | RoundReport | None
) -> AsyncIterator[bytes]:
    ident, created = _new_id(chat), int(time.time())
    chunk_of = ChatCompletionChunk if chat else TextCompletionChunk

    def chunk(choices: list[Any], usage: UsageJSON | None = None) -> bytes:
        nonlocal report
        event = chunk_of(id=ident, created=created, model=model, choices=choices, usage=usage, swarm=report)
        report = None  # the first chunk says who answers and why
        return _sse(event.model_dump_json())

    def choice(text: str | None, finish_reason: FinishReason | None = None) -> Any:
        if chat:
            return ChatChunkChoice(delta=ChatDelta(content=text), finish_reason=finish_reason)
        return TextChunkChoice(text=text or "", finish_reason=finish_reason)

    try:
        if chat:
            opening = ChatDelta(role="assistant", content="")
            yield chunk([ChatChunkChoice(delta=opening)])
        async for text in stream:
            yield chunk([choice(text)])
        final: Generation = stream.result
        yield chunk([choice(None, final.finish_reason)])
        if include_usage:
            yield chunk([], UsageJSON.of(final.usage))
        yield _sse(DONE)
    except EngineError as error:
        # Headers are gone already: the error travels as an event, as OpenAI's servers do.
        yield _sse(APIError.of(error).body().model_dump_json())
    finally:
        await stream.aclose()


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


def _new_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex


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


def _host(info: ModelInfo, peer_id: str | None, load: ModelLoad, local: bool, url: str | None) -> Host:
    return Host(
        peer_id=peer_id,
        local=local,
        http_url=url,
        backend=info.backend,
        context_length=info.context_length,
        chat=info.chat,
        parallel=info.parallel,
        hardware=info.hardware,
        tokens_per_second=info.tokens_per_second,
        running=load.running,
        waiting=load.waiting,
    )


def _model_card(node: NodeState, name: str) -> ModelCard:
    hosts = []
    local = node.models.get(name)
    if local is not None:
        url = node.network.http_url if node.network else None
        load = ModelLoad(local.running, local.queue.waiting)
        hosts.append(_host(local.info, node.node_id, load, True, url))
    if node.network is not None:
        for entry in node.network.table.hosts_for(name):
            info = entry.model(name)
            assert info is not None
            hosts.append(
                _host(
                    info,
                    entry.info.peer_id,
                    entry.info.load.get(name, ModelLoad()),
                    False,
                    entry.info.http_url,
                )
            )
    first = hosts[0]
    return ModelCard(
        id=name,
        created=int(node.started),
        backend=first.backend,
        context_length=first.context_length,
        max_model_len=first.context_length,
        chat=first.chat,
        tokens_per_second=first.tokens_per_second,
        local=local is not None,
        state=local.state if local is not None else "remote",
        hosts=hosts,
    )


def _swarm_card(node: NodeState) -> SwarmModelCard:
    table = node.router.table if node.router else None
    return SwarmModelCard(created=int(node.started), routing_table=table.version if table else None)
