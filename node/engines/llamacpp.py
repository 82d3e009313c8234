"""GGUF models in-process through xllamacpp (llama.cpp), the default on CPU.

xllamacpp releases the GIL while it computes and runs `parallel` slots with
continuous batching, so concurrent requests from worker threads share one
loaded model. An acceleration method whose settings apply at load time
(accel.methods) runs on a server loaded with them: an engine profile, loaded
on first use and kept, at most MAX_PROFILES at once (the least recently used
other than the default goes first).

llama.cpp returns no log-probabilities of the prompt, so a given continuation
is scored by generating it under a GBNF grammar that allows that text only,
with each token's log-probability reported. Those are the model's own, taken
before the grammar masks anything; the tokens are the ones the model picks
greedily among those the grammar allows, which may split the text otherwise
than its tokeniser would (then the score is a little lower).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import xllamacpp
from xllamacpp import common_speculative_type as speculative_type
from xllamacpp import ggml_type

from accel.methods import Method
from core.records import Generation, GenerationRequest, ModelInfo

from . import openai_shape
from .base import (
    DEFAULT_CONTEXT_LENGTH,
    Engine,
    EngineCrashed,
    EngineError,
    EngineSpec,
    EngineUnavailable,
    RequestRejected,
    Scored,
    TextSink,
    cpu_description,
)

MAX_PROFILES = 4  # the default and the three other lossless methods: no reloading between them
Profile = tuple[tuple[str, Any], ...]
_SPECULATIVE = {
    "ngram_simple": speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE,
    "ngram_mod": speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_MOD,
}
_CACHE_TYPES = {"f16": ggml_type.GGML_TYPE_F16, "q8_0": ggml_type.GGML_TYPE_Q8_0}
_GBNF_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def literal_grammar(text: str) -> str:
    """A GBNF grammar whose only sentence is `text`."""
    if not text:
        raise ValueError("a grammar for an empty text would let the model say nothing")
    escaped = "".join(
        _GBNF_ESCAPES.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in text
    )
    return f'root ::= "{escaped}"'


def profile(load: Mapping[str, Any]) -> Profile:
    return tuple(sorted(load.items()))


class LlamaCppEngine(Engine):
    def __init__(self, spec: EngineSpec, *, threads: int | None = None) -> None:
        """`spec.source` is the .gguf file."""
        self._path = spec.source
        self._context_length = spec.context_length or DEFAULT_CONTEXT_LENGTH
        # One core is left to the node's HTTP and network work: llama.cpp's threads wait for each
        # other at every layer, so one of them preempted slows all (measured in bench.serve).
        self.threads = threads or max(1, (os.cpu_count() or 2) - 1)
        self._parallel = spec.parallel or 1
        self._lock = threading.Lock()  # around loading and unloading servers
        self.info = ModelInfo(
            name=spec.name,
            backend="llamacpp",
            source=spec.source,
            context_length=self._context_length,
            chat=spec.chat,
            hardware=cpu_description(),
            parallel=self._parallel,
        )
        self._servers: OrderedDict[Profile, Any] = OrderedDict({(): self._load({})})

    def params(self, load: Mapping[str, Any]) -> Any:
        """The llama.cpp parameters of a profile: the engine's own, changed by a method's `load`."""
        params = xllamacpp.CommonParams()
        params.model.path = self._path
        # llama.cpp splits n_ctx across its slots: give every slot the full context.
        params.n_ctx = self._context_length * self._parallel
        params.n_parallel = self._parallel
        threads = (os.cpu_count() or 1) if load.get("threads") == "all" else self.threads
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.verbosity = -1
        kind = load.get("speculative")
        if kind == "ngram_simple":
            params.speculative.types = [_SPECULATIVE[kind]]
            params.speculative.ngram_simple.size_n = int(load["ngram_n"])
            params.speculative.ngram_simple.size_m = int(load["ngram_m"])
        elif kind == "ngram_mod":
            params.speculative.types = [_SPECULATIVE[kind]]
            params.speculative.ngram_mod.n_match = int(load["ngram_n"])
            params.speculative.ngram_mod.n_min = 2
            params.speculative.ngram_mod.n_max = int(load["ngram_m"])
        elif kind is not None:
            raise EngineError(f"llama.cpp has no speculative decoding {kind!r} here")
        if "cache_type" in load:
            params.cache_type_k = params.cache_type_v = _CACHE_TYPES[load["cache_type"]]
        if "n_batch" in load:
            params.n_batch, params.n_ubatch = int(load["n_batch"]), int(load["n_ubatch"])
        return params

    def _load(self, load: Mapping[str, Any]) -> Any:
        try:
            return xllamacpp.Server(self.params(load))
        except RuntimeError as exc:
            raise EngineError(
                f"llama.cpp could not load {self.info.name!r} with {dict(load)}: {exc}"
            ) from exc

    def _server_for(self, method: Method) -> Any:
        key = profile(method.load)
        with self._lock:
            if () not in self._servers:
                raise EngineUnavailable(f"model {self.info.name!r} is restarting")
            server = self._servers.get(key)
            if server is None:
                server = self._servers[key] = self._load(method.load)
                while len(self._servers) > MAX_PROFILES:
                    oldest = next(k for k in self._servers if k not in ((), key))
                    del self._servers[oldest]
            self._servers.move_to_end(key)
            return server

    def profiles(self) -> list[Profile]:
        """The profiles loaded now, least recently used first."""
        return list(self._servers)

    def _call(self, request: GenerationRequest, method: Method, stream: bool, callback: Any = None) -> Any:
        body = openai_shape.request_body(request, stream=stream) | dict(method.request)
        return self._call_body(request, method, body, callback)

    def _call_body(
        self, request: GenerationRequest, method: Method, body: dict[str, Any], callback: Any = None
    ) -> Any:
        server = self._server_for(method)
        handler = server.handle_chat_completions if request.is_chat else server.handle_completions
        try:
            return handler(body) if callback is None else handler(body, callback)
        except ValueError as exc:
            # llama.cpp's refusal of the request itself (its std::invalid_argument, say two assistant
            # messages at the end): the model is fine, and must not be restarted for it.
            raise RequestRejected(str(exc)) from exc
        except Exception as exc:  # xllamacpp surfaces engine faults as plain exceptions
            raise EngineCrashed(f"llama.cpp failed on model {self.info.name!r}: {exc}") from exc

    def generate(self, request: GenerationRequest, method: Method | None = None) -> Generation:
        return openai_shape.parse_generation(self._call(request, self.accepted(method), stream=False))

    def stream(self, request: GenerationRequest, sink: TextSink, method: Method | None = None) -> Generation:
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

        returned = self._call(request, self.accepted(method), stream=True, callback=feed)
        if failure is not None:
            raise failure
        # Errors found before generation starts come back as the return value, not a chunk.
        if isinstance(returned, dict):
            openai_shape.raise_for_error(returned)
        return accumulator.result()

    def score(self, request: GenerationRequest, continuation: str) -> Scored:
        encoded = continuation.encode()
        forced = dataclasses.replace(request, max_tokens=len(encoded) + 1, temperature=0.0, stop=())
        body = openai_shape.request_body(forced) | {"grammar": literal_grammar(continuation)}
        body |= {"logprobs": True, "top_logprobs": 1} if request.is_chat else {"n_probs": 1}
        response = self._call_body(forced, self.methods()[0], body)
        openai_shape.raise_for_error(response)
        logprobs, covered = [], 0
        for token in (response.get("choices") or [{}])[0].get("logprobs", {}).get("content", []):
            if covered >= len(encoded):
                break  # the end of the text: what follows is the end-of-generation token
            logprobs.append(float(token["logprob"]))
            covered += len(token["bytes"])
        if covered != len(encoded):
            raise EngineError(f"llama.cpp scored {covered} of the continuation's {len(encoded)} bytes")
        return Scored(tuple(logprobs), len(continuation))

    def score_replies(self, request: GenerationRequest, replies: Sequence[str]) -> tuple[Scored, ...]:
        # llama.cpp's logits for a prompt evaluated whole differ a little from those for the same prompt
        # taken from its cache (other kernels for one token than for a batch): a first call fills the
        # cache, so that every reply is then scored from the same numbers.
        if replies:
            self.score(request, replies[0])
        return super().score_replies(request, replies)

    def restart(self) -> None:
        with self._lock:
            self._servers.clear()
            self._servers[()] = self._load({})

    def close(self) -> None:
        with self._lock:
            self._servers.clear()
