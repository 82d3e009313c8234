"""How a failure to serve a request reaches whoever asked, defined once for both wires.

Over HTTP it is an OpenAI-shaped error with a status, a type and a code; from a
peer that ran the request it comes as an error frame, which the gateway turns
back into the same exception, so the caller gets the same answer whichever node
the model runs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.wire.errors import ErrorDetail

from .engines.base import ContextLengthExceeded, EngineError, EngineUnavailable, RequestRejected
from .hosting import RESTART_RETRY_AFTER_S, InvalidRequest, QueueFull


@dataclass(frozen=True)
class Failure:
    """One kind of failure: its HTTP status, OpenAI error type and code, and what a peer's frame carries."""

    error: type[Exception]
    status: int
    type: str
    code: str | None = None
    param: str | None = None  # the request field to blame, where the error names none itself
    retry_after_s: int | None = None  # when to retry, where the error says nothing itself
    prefix: str = ""  # what the caller reads before the error's own words
    carries: tuple[str, ...] = ()  # attributes of the error a peer's frame carries to the gateway

    def detail(self, error: Exception) -> ErrorDetail:
        return ErrorDetail(
            message=self.prefix + str(error),
            type=self.type,
            param=getattr(error, "param", self.param),
            code=self.code,
        )

    def retry_after(self, error: Exception) -> int | None:
        return getattr(error, "retry_after", self.retry_after_s)


# The first whose exception the error is an instance of applies, so subclasses come before their bases.
FAILURES = (
    Failure(QueueFull, 429, "rate_limit_error", "queue_full", carries=("retry_after",)),
    Failure(InvalidRequest, 400, "invalid_request_error", carries=("param",)),
    Failure(
        ContextLengthExceeded,
        400,
        "invalid_request_error",
        "context_length_exceeded",
        param="messages",
        carries=("prompt_tokens", "context_length"),
    ),
    Failure(
        RequestRejected,
        400,
        "invalid_request_error",
        "rejected_by_engine",
        prefix="the engine refused the request: ",
    ),
    Failure(
        EngineUnavailable,
        503,
        "service_unavailable",
        "engine_unavailable",
        retry_after_s=RESTART_RETRY_AFTER_S,
    ),
    Failure(EngineError, 500, "server_error", "engine_error", prefix="the engine failed: "),
)
SERVED = tuple(f.error for f in FAILURES)  # the errors serving a request may end in
_BY_KIND = {f.error.__name__: f for f in FAILURES}
# A peer's crashed engine is restarting there: to the gateway the model is unavailable for now.
# A peer's refusal to admit a request (node/admission.py) is a rate limit, as a full queue is.
_RELAYED_AS = {"EngineCrashed": "EngineUnavailable", "Refused": "QueueFull"}


def failure(error: Exception) -> Failure:
    return next(f for f in FAILURES if isinstance(error, f.error))


def error_frame(error: Exception) -> dict[str, Any]:
    """An error as a frame the gateway turns back into the same exception (and HTTP status)."""
    carried = {name: getattr(error, name) for name in failure(error).carries}
    return {"error": {"kind": type(error).__name__, "message": str(error), **carried}}


def error_from_frame(frame: dict[str, Any], peer_id: str) -> Exception:
    """The exception a peer's error frame stands for; a server-side one names the peer."""
    kind = str(frame.get("kind"))
    known = _BY_KIND.get(_RELAYED_AS.get(kind, kind), _BY_KIND["EngineError"])
    message = str(frame.get("message", "error"))
    if known.status >= 500:
        message = f"peer {peer_id}: {message}"
    # Rebuilt as raised, without its constructor: the message is the one the peer wrote.
    error = known.error.__new__(known.error)
    error.args = (message,)
    for name in known.carries:
        setattr(error, name, frame.get(name))
    return error
