"""GGUF models in-process through xllamacpp (llama.cpp), the default on CPU.

xllamacpp releases the GIL while it computes and runs `parallel` slots with
continuous batching, so concurrent requests from worker threads share one
loaded model.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import xllamacpp

from swarm.records import Generation, GenerationRequest, ModelInfo

from . import openai_shape
from .base import Engine, EngineCrashed, EngineError, EngineUnavailable, TextSink, cpu_description


class LlamaCppEngine(Engine):
    def __init__(
        self,
        name: str,
        path: str,
        *,
        chat: bool,
        context_length: int = 2048,
        threads: int | None = None,
        parallel: int = 1,
    ) -> None:
        self._path = path
        self._context_length = context_length
        # One core is left to the node's HTTP and network work: llama.cpp's threads wait for each
        # other at every layer, so one of them preempted slows all (measured in bench.serve).
        self.threads = threads or max(1, (os.cpu_count() or 2) - 1)
        self._parallel = parallel
        self._lock = threading.Lock()
        self.info = ModelInfo(
            name=name,
            backend="llamacpp",
            source=path,
            context_length=context_length,
            chat=chat,
            hardware=cpu_description(),
            parallel=parallel,
        )
        self._server: Any = self._load()

    def _load(self) -> Any:
        params = xllamacpp.CommonParams()
        params.model.path = self._path
        # llama.cpp splits n_ctx across its slots: give every slot the full context.
        params.n_ctx = self._context_length * self._parallel
        params.n_parallel = self._parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.verbosity = -1
        return xllamacpp.Server(params)

    def _server_or_raise(self) -> Any:
        server = self._server
        if server is None:
            raise EngineUnavailable(f"model {self.info.name!r} is restarting")
        return server

    def _call(self, request: GenerationRequest, stream: bool, callback: Any = None) -> Any:
        server = self._server_or_raise()
        body = openai_shape.request_body(request, stream=stream)
        handler = server.handle_chat_completions if request.is_chat else server.handle_completions
        try:
            return handler(body) if callback is None else handler(body, callback)
        except Exception as exc:  # xllamacpp surfaces engine faults as plain exceptions
            raise EngineCrashed(f"llama.cpp failed on model {self.info.name!r}: {exc}") from exc

    def generate(self, request: GenerationRequest) -> Generation:
        return openai_shape.parse_generation(self._call(request, stream=False))

    def stream(self, request: GenerationRequest, sink: TextSink) -> Generation:
        accumulator = openai_shape.StreamAccumulator(sink)
        failure: EngineError | None = None

        def feed(chunk: dict[str, Any]) -> bool:
            # An exception must not unwind through llama.cpp's C++ frames: keep it, stop, re-raise after.
            nonlocal failure
            try:
                return accumulator.feed(chunk)
            except EngineError as error:
                failure = error
                return True

        returned = self._call(request, stream=True, callback=feed)
        if failure is not None:
            raise failure
        # Errors found before generation starts come back as the return value, not a chunk.
        if isinstance(returned, dict):
            openai_shape.raise_for_error(returned)
        return accumulator.result()

    def restart(self) -> None:
        with self._lock:
            self._server = None
            self._server = self._load()

    def close(self) -> None:
        with self._lock:
            self._server = None
