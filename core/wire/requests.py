"""Request bodies: what OpenAI clients send, what `swarm calibrate` installs, what starts a profiling run.

Values must have the type the schema states (strict: no "0.7" for a number, no 1
for true), so the published schema is exactly what the node accepts. Fields the
node does not know are ignored, as OpenAI's servers do, except in the `swarm`
options, where a misspelt budget must not pass unnoticed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from core.records import GenerationRequest, Message

DEFAULT_MAX_TOKENS = 256
MAX_STOPS = 4


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class TextPart(_Body):
    type: Literal["text"]
    text: str


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart]

    def record(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return Message("system" if self.role == "developer" else self.role, text)


class StreamOptions(_Body):
    include_usage: bool = False


class SwarmOptions(_Body):
    """How the network answers a request to the model `swarm`, and within what budget."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["route", "consensus", "vote"] = Field(
        default="consensus",
        description="route: the best expert answers; consensus: the experts answer and judge each other; "
        "vote: majority over the experts' answers",
    )
    experts: int | None = Field(
        default=None, ge=1, le=16, description="most experts to ask (default: 1 to route, 3 for a round)"
    )
    max_latency_s: float | None = Field(default=None, gt=0, description="seconds until the answer is back")
    max_cost: float | None = Field(default=None, ge=0, description="in the unit of the announced prices")


# The bounds are checked by the validators below, for a clearer message than a union's; the schema says them.
_Stops = Annotated[
    list[str], WithJsonSchema({"type": "array", "items": {"type": "string"}, "maxItems": MAX_STOPS})
]
_OnePrompt = Annotated[
    list[str], WithJsonSchema({"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1})
]


class _Sampling(_Body):
    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | _Stops | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1, description="only one choice per request is supported")
    stream: bool = Field(default=False, description="answer as server-sent events")
    stream_options: StreamOptions | None = None
    swarm: SwarmOptions | None = Field(default=None, description="only for the model 'swarm'")

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > MAX_STOPS:
            raise ValueError(f"at most {MAX_STOPS} stop sequences")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def question(self) -> str:
        """What the router places among its clusters."""
        raise NotImplementedError

    def record(self) -> GenerationRequest:
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


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def record(self) -> GenerationRequest:
        return GenerationRequest(
            messages=tuple(m.record() for m in self.messages),
            **self._sampling(self.max_completion_tokens or self.max_tokens),
        )

    def question(self) -> str:
        """The last thing the user said."""
        return next((m.record().content for m in reversed(self.messages) if m.role == "user"), "")


class CompletionRequest(_Sampling):
    prompt: str | _OnePrompt

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


class ProfileRequest(_Body):
    model_config = ConfigDict(extra="forbid")

    per_kind: int = Field(default=2, ge=1, le=50, description="tasks of every kind in the mix")
    seed: int = 0
    models: list[str] | None = Field(default=None, description="models to profile (default, or []: all here)")
    kinds: list[str] | None = Field(
        default=None, min_length=1, description="task kinds of the built-in mix (default: all of them)"
    )


class RoutingTable(_Body):
    """A routing table as `swarm calibrate` builds it and `routing.table.ClusterTable.to_json` writes it.

    Counts, not accuracies: per cluster (a row) and model (a column), the calibration
    questions answered right and asked. `version` is a hash of the rest.
    """

    # The matrices first: a body missing everything is told about them first.
    centroids: list[list[float]] = Field(description="K unit vectors in the embedder's space")
    correct: list[list[int]] = Field(description="K rows of one count per model")
    counts: list[list[int]] = Field(description="K rows of one count per model")
    models: list[str]
    embedder: str
    created_at: float = Field(description="when it was built (Unix time): the newer table wins everywhere")
    format: Literal[1]  # routing.table.FORMAT
    version: str | None = Field(default=None, description="checked against the content when given")
