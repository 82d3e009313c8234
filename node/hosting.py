"""A model hosted by this node: its engine behind a fair, bounded queue.

Engines block, so they run in worker threads; this module is where the
node's trio world meets them. It admits requests in arrival order up to the
engine's parallel slots, refuses past a bounded wait line (the API turns that
into 429 + Retry-After), restarts an engine that crashed, and keeps the
per-model metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import trio

from accel.features import TaskFeatures
from accel.methods import Method
from core.records import Generation, GenerationRequest, ModelInfo

from . import prompts
from .accel import Accelerator, Measurement, features_of
from .engines.base import Engine, EngineCrashed, EngineError, EngineUnavailable
from .metrics import NodeMetrics

RESTART_RETRY_AFTER_S = 5

Producer = Callable[..., Awaitable[None]]


class QueueFull(Exception):
    def __init__(self, model: str, waiting: int, retry_after: int) -> None:
        super().__init__(f"model {model!r} has {waiting} requests waiting, the most it queues; retry later")
        self.retry_after = retry_after


class InvalidRequest(ValueError):
    """The request can't be served by this model as asked; the message says why."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ModelQueue:
    """FIFO admission to a model's slots with a bounded wait line.

    trio's Semaphore hands a released slot to the longest waiter, so admission
    is first come, first served.
    """

    def __init__(self, slots: int, max_waiting: int) -> None:
        self.slots = slots
        self.max_waiting = max_waiting
        self.waiting = 0
        self._semaphore = trio.Semaphore(slots)
        self._mean_latency_s = 1.0

    def retry_after(self) -> int:
        return max(1, math.ceil(self._mean_latency_s * (self.waiting + 1) / self.slots))

    def record_latency(self, seconds: float) -> None:
        self._mean_latency_s = 0.8 * self._mean_latency_s + 0.2 * seconds

    async def acquire(self, model: str) -> None:
        if self._semaphore.value == 0 and self.waiting >= self.max_waiting:
            raise QueueFull(model, self.waiting, self.retry_after())
        self.waiting += 1
        try:
            await self._semaphore.acquire()
        finally:
            self.waiting -= 1

    def release(self) -> None:
        self._semaphore.release()


class TextStream:
    """The pieces of one streamed generation, then its summary in `result`."""

    def __init__(self, receive: trio.MemoryReceiveChannel, cancel: threading.Event, first: object) -> None:
        self._receive = receive
        self._cancel = cancel
        self._pending: object | None = first
        self.result: Generation | None = None

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        if self._pending is not None:
            item, self._pending = self._pending, None
        else:
            try:
                item = await self._receive.receive()
            except trio.EndOfChannel:
                raise StopAsyncIteration from None
        if isinstance(item, Generation):
            self.result = item
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        assert isinstance(item, str)
        return item + self._backlog()

    def _backlog(self) -> str:
        """Text that has already arrived: sent with this piece rather than as events of its own, so a
        reader that falls behind the engine catches up in fewer, larger writes."""
        pieces = []
        while self._pending is None:
            try:
                item = self._receive.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            if isinstance(item, str):
                pieces.append(item)
            else:
                self._pending = item
        return "".join(pieces)

    async def aclose(self) -> None:
        self._cancel.set()
        await self._receive.aclose()

    @classmethod
    async def start(cls, nursery: trio.Nursery, produce: Producer, *args: object) -> TextStream:
        """Run `produce(*args, send, cancel)` in `nursery`; return once its first item (or error) is in.

        Waiting for the first item lets a bad request fail with a proper HTTP status instead of an
        error inside an already-started event stream. The producer sends text pieces, then a
        Generation or an exception, and stops when `cancel` is set or the channel breaks.
        """
        # Unbounded: an engine thread must never wait on the event loop (max_tokens bounds it anyway).
        send, receive = trio.open_memory_channel[object](math.inf)
        cancel = threading.Event()
        nursery.start_soon(produce, *args, send, cancel)
        try:
            first = await receive.receive()
        except trio.EndOfChannel:
            raise EngineError("the stream ended without a result") from None
        except BaseException:
            cancel.set()
            await receive.aclose()
            raise
        if isinstance(first, BaseException):
            raise first
        return cls(receive, cancel, first)


class HostedModel:
    def __init__(
        self,
        engine: Engine,
        metrics: NodeMetrics,
        *,
        max_waiting: int = 64,
        price_per_token: float = 0.0,
        accelerator: Accelerator | None = None,
    ) -> None:
        self.engine = engine
        self.accelerator = accelerator
        self.price_per_token = price_per_token
        self.name = engine.info.name
        self.queue = ModelQueue(engine.info.parallel, max_waiting)
        self.state = "ready"
        self.running = 0
        self._metrics = metrics
        self._tokens_per_second: float | None = None
        self._nursery: trio.Nursery | None = None

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the model the node's nursery, where streams and restarts run."""
        self._nursery = nursery

    @property
    def info(self) -> ModelInfo:
        return dataclasses.replace(
            self.engine.info, tokens_per_second=self._tokens_per_second, price_per_token=self.price_per_token
        )

    def prepare(self, request: GenerationRequest) -> GenerationRequest:
        """Check the request against this model and shape it for the engine."""
        limit = self.engine.info.context_length
        if request.max_tokens > limit:
            raise InvalidRequest(
                f"max_tokens is {request.max_tokens} but model {self.name!r} has a context of {limit} tokens",
                param="max_tokens",
            )
        return request if self.engine.info.chat else prompts.as_completion(request)

    def _check_ready(self) -> None:
        if self.state != "ready":
            raise EngineUnavailable(
                f"model {self.name!r} is restarting after an engine failure; retry shortly"
            )

    def _account(self, generation: Generation, started: float) -> None:
        elapsed = time.monotonic() - started
        self.queue.record_latency(elapsed)
        self._metrics.latency.labels(self.name).observe(elapsed)
        self._metrics.prompt_tokens.labels(self.name).inc(generation.usage.prompt_tokens)
        self._metrics.completion_tokens.labels(self.name).inc(generation.usage.completion_tokens)
        if generation.usage.completion_tokens >= 8 and elapsed > 0:
            rate = generation.usage.completion_tokens / elapsed
            previous = self._tokens_per_second
            self._tokens_per_second = rate if previous is None else 0.8 * previous + 0.2 * rate

    def _on_engine_error(self, error: EngineError) -> None:
        self._metrics.errors.labels(self.name, type(error).__name__).inc()
        if isinstance(error, EngineCrashed) and self.state == "ready":
            self.state = "restarting"
            assert self._nursery is not None
            self._nursery.start_soon(self._restart)

    async def _restart(self) -> None:
        self._metrics.engine_restarts.labels(self.name).inc()
        while True:
            try:
                await trio.to_thread.run_sync(self.engine.restart)
            except Exception:  # a failed restart is retried: the node must come back on its own
                await trio.sleep(RESTART_RETRY_AFTER_S)
                continue
            self.state = "ready"
            return

    async def _admit(self) -> float:
        self._check_ready()
        self._metrics.queue_waiting.labels(self.name).set(self.queue.waiting + 1)
        try:
            await self.queue.acquire(self.name)
        finally:
            self._metrics.queue_waiting.labels(self.name).set(self.queue.waiting)
        self.running += 1
        self._metrics.running.labels(self.name).inc()
        return time.monotonic()

    def _leave(self) -> None:
        self.running -= 1
        self._metrics.running.labels(self.name).dec()
        self.queue.release()

    def _pick(self, request: GenerationRequest) -> tuple[TaskFeatures | None, Method]:
        """The request's features (None when nothing learns from them), and the acceleration method the
        node's learner picks for it."""
        if self.accelerator is None or not self.accelerator.enabled:
            return None, self.engine.methods()[0]
        info = self.engine.info
        features = features_of(request, self.name, info.backend, info.hardware, self.running)
        return features, self.accelerator.choose(features, self.engine.methods())[0]

    def _learn(self, features: TaskFeatures | None, method: Method, measured: Measurement) -> None:
        if features is not None and measured.generation.finish_reason != "cancelled":
            assert self.accelerator is not None  # features are described only for it
            self.accelerator.record(features, method, measured, matched=None)

    async def generate(self, request: GenerationRequest) -> Generation:
        """Run a request to completion; cancelling the caller (the client left) stops the engine too."""
        request = self.prepare(request)
        features, method = self._pick(request)
        measured = await self.measure(request, method)
        self._learn(features, method, measured)
        return measured.generation

    async def measure(self, request: GenerationRequest, method: Method) -> Measurement:
        """Run a request with the given acceleration method, timed; recorded nowhere."""
        request = self.prepare(request)  # again when called from generate: preparing twice changes nothing
        started = await self._admit()
        cancel = threading.Event()
        first: list[float] = []

        def sink(_piece: str) -> bool:
            if not first:
                first.append(time.monotonic())
            return cancel.is_set()

        try:
            # Streamed internally so a cancelled caller can stop the engine at its next token
            # instead of leaving it to generate for nobody.
            generation = await trio.to_thread.run_sync(
                self.engine.stream, request, sink, method, abandon_on_cancel=True
            )
        except trio.Cancelled:
            cancel.set()
            self._metrics.client_disconnects.labels(self.name).inc()
            raise
        except EngineError as error:
            self._on_engine_error(error)
            raise
        finally:
            self._leave()
        self._account(generation, started)
        ttft = first[0] - started if first else None
        if ttft is not None:  # streamed to the sink inside, so as real a first token as a client's
            self._metrics.time_to_first_token.labels(self.name).observe(ttft)
        return Measurement(generation, time.monotonic() - started, ttft)

    async def stream(self, request: GenerationRequest) -> TextStream:
        """Start a streamed generation; returns once the first piece (or an error) is known."""
        request = self.prepare(request)
        features, method = self._pick(request)
        started = await self._admit()
        assert self._nursery is not None
        return await TextStream.start(self._nursery, self._produce, request, features, method, started)

    async def _produce(
        self,
        request: GenerationRequest,
        features: TaskFeatures | None,
        method: Method,
        started: float,
        send: trio.MemorySendChannel,
        cancel: threading.Event,
    ) -> None:
        first_token_at: float | None = None
        loop = trio.lowlevel.current_trio_token()

        def deliver(text: str) -> None:
            try:
                send.send_nowait(text)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                cancel.set()

        def sink(text: str) -> bool:
            # Hand the piece to the event loop without waiting for it: a round trip per token
            # would slow generation itself.
            nonlocal first_token_at
            if cancel.is_set():
                return True
            if first_token_at is None:
                first_token_at = time.monotonic()
                self._metrics.time_to_first_token.labels(self.name).observe(first_token_at - started)
            try:
                loop.run_sync_soon(deliver, text)
            except trio.RunFinishedError:
                cancel.set()
            return cancel.is_set()

        async with send:
            try:
                generation = await trio.to_thread.run_sync(self.engine.stream, request, sink, method)
            except EngineError as error:
                self._on_engine_error(error)
                outcome: object = error
            except Exception as exc:  # a fault in a background task must not take the node down
                crash = EngineCrashed(f"model {self.name!r} failed while streaming: {exc}")
                self._on_engine_error(crash)
                outcome = crash
            else:
                self._account(generation, started)
                ttft = None if first_token_at is None else first_token_at - started
                self._learn(features, method, Measurement(generation, time.monotonic() - started, ttft))
                outcome = generation
                if generation.finish_reason == "cancelled":
                    self._metrics.client_disconnects.labels(self.name).inc()
            finally:
                self._leave()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await send.send(outcome)  # fails only when the client is gone: nobody is left to tell
