"""Translation between our records and OpenAI-shaped dicts.

llama.cpp (in-process), vLLM and any OpenAI-compatible server speak the same
JSON, so the engines that wrap them share this one translation.
"""

from __future__ import annotations

import re
from typing import Any

from core.records import FinishReason, Generation, GenerationRequest, Usage
from core.wire import choice_text

from .base import ContextLengthExceeded, EngineError, RequestRejected, TextSink


def request_body(
    request: GenerationRequest, *, model: str | None = None, stream: bool = False
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }
    if model is not None:
        body["model"] = model
    if request.messages is not None:
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
    else:
        body["prompt"] = request.prompt
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None:
        body["seed"] = request.seed
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


_CONTEXT_MESSAGE = re.compile(
    r"maximum context length is (?P<context>\d+) tokens\. However, your .*?"
    r"(?:has|resulted in) (?P<prompt>\d+)",
    re.DOTALL,
)


def raise_for_error(response: dict[str, Any]) -> None:
    error = response.get("error")
    if error is None:
        return
    if isinstance(error, str):
        raise EngineError(error)
    message = str(error.get("message", error))
    if error.get("type") == "exceed_context_size_error":
        raise ContextLengthExceeded(int(error.get("n_prompt_tokens", 0)), int(error.get("n_ctx", 0)))
    # vLLM and OpenAI say it only in words: "maximum context length is 1024 tokens. However, your request
    # has 3031 input tokens" (vLLM) or "your messages resulted in 9000 tokens" (OpenAI). vLLM's other
    # message, about max_tokens too large for the remaining context, has no "However" and stays a 4xx.
    words = _CONTEXT_MESSAGE.search(message)
    if words is not None:
        raise ContextLengthExceeded(int(words["prompt"]), int(words["context"]))
    if error.get("code") == "context_length_exceeded":
        raise ContextLengthExceeded(0, 0, message)
    code = error.get("code")
    if isinstance(code, int) and 400 <= code < 500:
        raise RequestRejected(message)
    raise EngineError(message)


def usage_of(response: dict[str, Any]) -> Usage | None:
    usage = response.get("usage")
    if not usage:
        return None
    return Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)))


def _finish_reason(value: Any) -> Any:
    # Servers say "eos" or "stop_sequence" for what OpenAI calls "stop".
    if value in (None, "length", "cancelled"):
        return value
    return "stop"


def parse_generation(response: dict[str, Any]) -> Generation:
    raise_for_error(response)
    choices = response.get("choices") or []
    if not choices:
        raise EngineError(f"the engine returned no choices: {str(response)[:200]}")
    choice = choices[0]
    text = choice_text(choice)
    usage = usage_of(response) or Usage(0, 0)
    return Generation(
        text=text, finish_reason=_finish_reason(choice.get("finish_reason")) or "stop", usage=usage
    )


class StreamAccumulator:
    """Feeds streamed OpenAI chunks to a sink and sums them up into one Generation."""

    def __init__(self, sink: TextSink) -> None:
        self._sink = sink
        self._parts: list[str] = []
        self._finish: FinishReason | None = None
        self._usage: Usage | None = None
        self.cancelled = False

    def feed(self, chunk: dict[str, Any]) -> bool:
        """Take one chunk; returns True when the sink asked to stop."""
        raise_for_error(chunk)
        self._usage = usage_of(chunk) or self._usage
        for choice in chunk.get("choices") or []:
            text = choice_text(choice)
            self._finish = _finish_reason(choice.get("finish_reason")) or self._finish
            if text:
                self._parts.append(text)
                if self._sink(text):
                    self.cancelled = True
        return self.cancelled

    def result(self) -> Generation:
        text = "".join(self._parts)
        finish: FinishReason = "cancelled" if self.cancelled else (self._finish or "stop")
        return Generation(text=text, finish_reason=finish, usage=self._usage or Usage(0, len(self._parts)))
