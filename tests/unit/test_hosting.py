"""The queue and restart logic in front of an engine, with a scripted engine standing in for a model."""

from __future__ import annotations

import threading

import pytest
import trio

from accel.methods import Method
from core.records import Generation, GenerationRequest, Message, ModelInfo, Usage
from node.engines.base import Engine, EngineCrashed, EngineUnavailable, TextSink
from node.hosting import HostedModel, InvalidRequest, ModelQueue, QueueFull
from node.metrics import NodeMetrics


class ScriptedEngine(Engine):
    """Answers with the prompt it was given; can be told to crash or to block until released."""

    def __init__(self, *, chat: bool = True, parallel: int = 1) -> None:
        self.info = ModelInfo("scripted", "test", "-", 64, chat, "cpu", parallel)
        self.crash_next = False
        self.restarts = 0
        self.release = threading.Event()
        self.release.set()
        self.seen: list[GenerationRequest] = []

    def generate(self, request: GenerationRequest, method: Method | None = None) -> Generation:
        return self.stream(request, lambda _: False, method)

    def stream(self, request: GenerationRequest, sink: TextSink, method: Method | None = None) -> Generation:
        """Streams "a", "b", "c", or the prompt in one piece; `release` paces the pieces."""
        self.seen.append(request)
        if self.crash_next:
            self.crash_next = False
            raise EngineCrashed("boom")
        pieces = [request.prompt] if request.prompt else ["a", "b", "c"]
        sent = []
        for piece in pieces:
            if sent:
                self.release.wait(5)
            if sink(piece):
                return Generation("".join(sent), "cancelled", Usage(3, len(sent)))
            sent.append(piece)
        return Generation("".join(sent), "stop", Usage(3, len(sent)))

    def restart(self) -> None:
        self.restarts += 1

    def close(self) -> None:
        pass


def _chat(max_tokens: int = 8) -> GenerationRequest:
    return GenerationRequest("scripted", messages=(Message("user", "hi"),), max_tokens=max_tokens)


async def test_queue_admits_in_arrival_order() -> None:
    queue = ModelQueue(slots=1, max_waiting=10)
    order: list[int] = []
    await queue.acquire("m")

    async def waiter(i: int) -> None:
        await queue.acquire("m")
        order.append(i)
        queue.release()

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(waiter, i)
            await trio.sleep(0.01)  # fix the arrival order
        queue.release()
    assert order == [0, 1, 2, 3, 4]


async def test_queue_refuses_past_its_wait_line_with_a_retry_hint() -> None:
    queue = ModelQueue(slots=1, max_waiting=2)
    await queue.acquire("m")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(queue.acquire, "m")
        nursery.start_soon(queue.acquire, "m")
        await trio.sleep(0.01)
        assert queue.waiting == 2
        with pytest.raises(QueueFull) as refused:
            await queue.acquire("m")
        assert refused.value.retry_after >= 1
        nursery.cancel_scope.cancel()
    assert queue.waiting == 0  # cancelled waiters leave the line


async def test_max_tokens_beyond_the_context_is_refused() -> None:
    hosted = HostedModel(ScriptedEngine(), NodeMetrics())
    with pytest.raises(InvalidRequest) as refused:
        await hosted.generate(_chat(max_tokens=65))
    assert refused.value.param == "max_tokens"


async def test_base_models_get_a_completion_prompt() -> None:
    engine = ScriptedEngine(chat=False)
    hosted = HostedModel(engine, NodeMetrics())
    generation = await hosted.generate(_chat())
    assert engine.seen[0].prompt == "Q: hi\nA:"
    assert "\nQ:" in engine.seen[0].stop
    assert generation.text == "Q: hi\nA:"


async def test_a_crashed_engine_is_restarted_and_refuses_meanwhile() -> None:
    engine = ScriptedEngine()
    metrics = NodeMetrics()
    hosted = HostedModel(engine, metrics)
    async with trio.open_nursery() as nursery:
        hosted.attach(nursery)
        engine.crash_next = True
        with pytest.raises(EngineCrashed):
            await hosted.generate(_chat())
        assert hosted.state == "restarting"
        with pytest.raises(EngineUnavailable):
            await hosted.generate(_chat())
        with trio.fail_after(5):
            while hosted.state != "ready":
                await trio.sleep(0.01)
    assert engine.restarts == 1
    assert (await hosted.generate(_chat())).text == "abc"
    assert metrics.engine_restarts.labels("scripted")._value.get() == 1


async def test_stream_delivers_pieces_then_the_result() -> None:
    hosted = HostedModel(ScriptedEngine(), NodeMetrics())
    async with trio.open_nursery() as nursery:
        hosted.attach(nursery)
        stream = await hosted.stream(_chat())
        pieces = [p async for p in stream]
        await stream.aclose()
    assert "".join(pieces) == "abc"
    assert stream.result is not None and stream.result.text == "abc"
    assert hosted.queue.waiting == 0


async def test_closing_a_stream_cancels_the_engine_and_frees_the_slot() -> None:
    metrics = NodeMetrics()
    engine = ScriptedEngine()
    hosted = HostedModel(engine, metrics)
    async with trio.open_nursery() as nursery:
        hosted.attach(nursery)
        engine.release.clear()  # hold the engine after its first piece
        stream = await hosted.stream(_chat())
        await stream.aclose()
        engine.release.set()
        with trio.fail_after(5):
            await hosted.queue.acquire("scripted")  # the slot came back
        hosted.queue.release()
    assert metrics.client_disconnects.labels("scripted")._value.get() == 1


async def test_cancelling_generate_stops_the_engine() -> None:
    engine = ScriptedEngine()
    engine.release.clear()
    metrics = NodeMetrics()
    hosted = HostedModel(engine, metrics)
    outcome: list[Generation] = []

    def stream_and_keep(
        request: GenerationRequest, sink: TextSink, method: Method | None = None
    ) -> Generation:
        outcome.append(ScriptedEngine.stream(engine, request, sink, method))
        return outcome[-1]

    engine.stream = stream_and_keep  # type: ignore[method-assign]
    with trio.move_on_after(0.2):
        await hosted.generate(_chat())
    engine.release.set()
    with trio.fail_after(5):
        while not outcome:
            await trio.sleep(0.01)
    assert outcome[0].finish_reason == "cancelled"
    assert metrics.client_disconnects.labels("scripted")._value.get() == 1
