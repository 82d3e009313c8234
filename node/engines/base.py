"""The one small interface every model backend implements.

Engines are synchronous: the node calls them from worker threads, so an
engine may block (llama.cpp, torch, an HTTP call) without stalling the
event loop. Streaming goes through a callback that returns True to stop
generation early (the client went away).
"""

from __future__ import annotations

import os
import platform
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from accel.methods import Method, methods_for
from core.records import Generation, GenerationRequest, ModelInfo

DEFAULT_CONTEXT_LENGTH = 2048  # tokens per request when neither the operator nor a server says

# Called with each streamed piece of text; returning True cancels the generation.
TextSink = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class EngineSpec:
    """What every engine is built from, whatever its backend; each takes its own settings beside it."""

    name: str  # what the model is served and announced as
    source: str  # what the engine runs: a model file or folder, a hub id (vLLM), a server's base URL
    chat: bool = True  # the model takes chat messages, not only plain prompts
    context_length: int | None = None  # tokens per request; None: the server's, or DEFAULT_CONTEXT_LENGTH
    parallel: int | None = None  # requests generated at once; None: the backend's own number


def cpu_description() -> str:
    """The hardware label a CPU engine reports and a node announces."""
    return f"cpu:{platform.machine()}x{os.cpu_count()}"


class EngineError(Exception):
    """The engine could not serve a request; the message is shown to the caller."""


class ContextLengthExceeded(EngineError):
    def __init__(self, prompt_tokens: int, context_length: int, detail: str | None = None) -> None:
        # `detail` carries a server's own words when it gave no counts.
        super().__init__(
            detail
            or f"the prompt is {prompt_tokens} tokens but the model's context holds {context_length}; "
            "shorten the prompt"
        )
        self.prompt_tokens = prompt_tokens
        self.context_length = context_length


class RequestRejected(EngineError):
    """The engine refused the request as invalid (a 4xx from a server behind us)."""


class EngineUnavailable(EngineError):
    """The engine is (re)starting or its process is gone; the caller may retry later."""


class EngineCrashed(EngineError):
    """The engine failed in a way that needs a restart before it serves again."""


class NoProbabilities(EngineError):
    """The engine gives no token probabilities: its judgments can only be read as text."""


@dataclass(frozen=True, slots=True)
class Scored:
    """A given continuation of a request as the model scores it: each of its tokens' log-probability,
    the tokens as the engine split the text."""

    logprobs: tuple[float, ...]
    chars: int

    @property
    def logprob(self) -> float:
        """The log-probability of the whole continuation."""
        return sum(self.logprobs)

    @property
    def per_char(self) -> float:
        """The log-likelihood per character: comparable across answers of any length, however the
        tokeniser splits them (lm-evaluation-harness's acc_norm)."""
        return self.logprob / self.chars


class Engine(ABC):
    info: ModelInfo

    def methods(self) -> tuple[Method, ...]:
        """The acceleration methods this engine applies (accel.methods); the first is its default."""
        return methods_for(self.info.backend)

    def accepted(self, method: Method | None) -> Method:
        """The method to run a request with: the default for None; EngineError for another backend's."""
        if method is None:
            return self.methods()[0]
        if method.backend != self.info.backend:
            raise EngineError(f"method {method.name!r} is for {method.backend}, not {self.info.backend}")
        return method

    @abstractmethod
    def generate(self, request: GenerationRequest, method: Method | None = None) -> Generation:
        """Run one request to completion."""

    @abstractmethod
    def stream(self, request: GenerationRequest, sink: TextSink, method: Method | None = None) -> Generation:
        """Run one request, handing each piece of text to `sink` as it is produced, with the acceleration
        `method` (None: the default).

        Returns the whole generation. If `sink` returns True the engine stops as
        soon as it can, makes no more calls, and reports finish_reason "cancelled".
        """

    def score(self, request: GenerationRequest, continuation: str) -> Scored:
        """The model's log-probabilities of `continuation` as the reply to `request` (its sampling settings
        and stop strings do not apply); NoProbabilities where the backend gives none."""
        raise NoProbabilities(f"the {self.info.backend} engine gives no token probabilities")

    def score_replies(self, request: GenerationRequest, replies: Sequence[str]) -> tuple[Scored, ...]:
        """Each of `replies` scored as the whole reply to `request`, all from the same reading of it."""
        return tuple(self.score(request, reply) for reply in replies)

    @abstractmethod
    def restart(self) -> None:
        """Bring the engine back after EngineCrashed; blocks until it serves again."""

    @abstractmethod
    def close(self) -> None:
        """Release the model and any process behind it."""
