"""Error bodies, OpenAI-shaped: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None  # the request field at fault, dotted ("messages.0.role")
    code: str | None = None  # machine-readable: "model_not_found", "queue_full", ...


class ErrorResponse(BaseModel):
    """Every failure, and the event that ends a stream that failed after its headers were sent."""

    error: ErrorDetail


def invalid_request(errors: Sequence[Mapping[str, Any]]) -> ErrorDetail:
    """The first of pydantic's complaints about a request, worded as the node answers it.

    The SDK checks a request with the same models before sending it, so it words a
    bad request exactly as the node would have.
    """
    first = errors[0]
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", "")
        return ErrorDetail(
            message=f"the request body is not valid JSON: {reason}",
            type="invalid_request_error",
            code="invalid_json",
        )
    param = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or None
    message = str(first.get("msg", "invalid request"))
    if first.get("type") == "missing":
        message = f"missing required field {param!r}" if param else "the request has no body"
    elif param:
        message = f"invalid {param!r}: {message}"
    return ErrorDetail(message=message, type="invalid_request_error", param=param)
