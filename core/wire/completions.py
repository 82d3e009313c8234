"""What the OpenAI-compatible endpoints answer: completions, their streamed chunks, the model list."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from core import records
from core.records import FinishReason

from .provenance import SwarmReport

PROVENANCE = "who answered the model 'swarm', and why (on a stream: in its first chunk)"


def _is_none(value: object) -> bool:
    return value is None


def _omitted_if_none(description: str) -> Any:
    """A field left out of the JSON when unset, as OpenAI's servers do, rather than sent as null."""
    return Field(default=None, exclude_if=_is_none, description=description)


class _Response(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class Usage(_Response):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: records.Usage) -> Usage:
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )

    def record(self) -> records.Usage:
        return records.Usage(self.prompt_tokens, self.completion_tokens)


class AssistantMessage(_Response):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(_Response):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason

    @property
    def text(self) -> str:
        return self.message.content


class TextChoice(_Response):
    index: int = 0
    text: str
    logprobs: None = None
    finish_reason: FinishReason


Choice = TypeVar("Choice", ChatChoice, TextChoice)


class _Answer(_Response, Generic[Choice]):
    """A whole answer; the subclasses say which kind (`object`) and the shape of its one choice."""

    id: str
    object: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    swarm: SwarmReport | None = _omitted_if_none(PROVENANCE)

    @property
    def text(self) -> str:
        return self.choices[0].text

    @property
    def finish_reason(self) -> FinishReason:
        return self.choices[0].finish_reason


class ChatCompletion(_Answer[ChatChoice]):
    object: Literal["chat.completion"] = "chat.completion"


class TextCompletion(_Answer[TextChoice]):
    object: Literal["text_completion"] = "text_completion"


class ChatDelta(_Response):
    role: Literal["assistant"] | None = _omitted_if_none("on the first chunk")
    content: str | None = _omitted_if_none("absent on the last chunk")


class ChatChunkChoice(_Response):
    index: int = 0
    delta: ChatDelta
    finish_reason: FinishReason | None = Field(default=None, description="on the last chunk with a choice")

    @property
    def text(self) -> str:
        return self.delta.content or ""


class TextChunkChoice(_Response):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = Field(default=None, description="on the last chunk with a choice")


Piece = TypeVar("Piece", ChatChunkChoice, TextChunkChoice)


class _Chunk(_Response, Generic[Piece]):
    """One server-sent event of a stream; after the last choice, one with usage and no choices if
    `stream_options.include_usage` asked for it."""

    id: str
    object: str
    created: int
    model: str
    choices: list[Piece]
    usage: Usage | None = _omitted_if_none("on the usage chunk")
    swarm: SwarmReport | None = _omitted_if_none(PROVENANCE)

    @property
    def text(self) -> str:
        return "".join(choice.text for choice in self.choices)

    @property
    def finish_reason(self) -> FinishReason | None:
        return next((c.finish_reason for c in self.choices if c.finish_reason is not None), None)


class ChatCompletionChunk(_Chunk[ChatChunkChoice]):
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"


class TextCompletionChunk(_Chunk[TextChunkChoice]):
    object: Literal["text_completion"] = "text_completion"


class Host(_Response):
    """One node that runs a model, and how busy its copy is."""

    peer_id: str | None = Field(description="null: this node, outside any network")
    local: bool
    http_url: str | None
    backend: str
    context_length: int
    chat: bool
    parallel: int
    hardware: str
    tokens_per_second: float | None = Field(description="measured; null: not yet")
    running: int
    waiting: int


class ModelCard(_Response):
    """One model of the network: its description, and every node that runs it (this one first)."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: Literal["swarm"] = "swarm"
    backend: str
    context_length: int
    max_model_len: int = Field(description="vLLM's name for the context length, which clients probe")
    chat: bool
    tokens_per_second: float | None
    local: bool
    state: str = Field(description="ready, restarting, or remote (hosted by peers only)")
    hosts: list[Host]


class SwarmModelCard(_Response):
    """The network as one model: whoever the router picks answers."""

    id: Literal["swarm"] = records.SWARM_MODEL
    object: Literal["model"] = "model"
    created: int
    owned_by: Literal["swarm"] = "swarm"
    backend: Literal["router"] = "router"
    chat: Literal[True] = True
    local: Literal[True] = True
    state: Literal["ready"] = "ready"
    routing_table: str | None = Field(description="the version of the routing table in use")
    hosts: list[Host] = Field(default_factory=list, description="none: the router picks among all")


class ModelList(_Response):
    object: Literal["list"] = "list"
    data: list[ModelCard | SwarmModelCard]
