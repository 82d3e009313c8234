"""Errors raised by the client SDK, one class per thing a caller would handle differently."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from core.wire.errors import ErrorResponse, invalid_request


class SwarmError(Exception):
    """Base of every error the SDK raises."""


class ConnectionFailed(SwarmError):
    """The node could not be reached (nothing was sent, or the connection broke)."""


class DeadlineExceeded(SwarmError):
    """The call's total deadline passed before it finished."""


class APIError(SwarmError):
    """The node answered with an error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code or type or 'error'}: {message}")
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.retry_after = retry_after


class BadRequest(APIError):
    pass


class AuthenticationFailed(APIError):
    pass


class ModelNotFound(APIError):
    pass


class RateLimited(APIError):
    pass


class ServiceUnavailable(APIError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationFailed,
    404: ModelNotFound,
    413: BadRequest,
    429: RateLimited,
    503: ServiceUnavailable,
}


def from_response(status: int, body: Any, retry_after: str | None) -> APIError:
    cls = _BY_STATUS.get(status, APIError)
    try:
        delay = float(retry_after) if retry_after is not None else None
    except ValueError:
        delay = None
    try:
        error = ErrorResponse.model_validate(body).error
    except ValidationError:  # not the node's error body: a proxy's page, say
        return cls(status, str(body)[:500] if body else f"HTTP {status}", retry_after=delay)
    return cls(status, error.message, type=error.type, code=error.code, param=error.param, retry_after=delay)


def refused_before_sending(invalid: ValidationError) -> BadRequest:
    """A request the node's own models reject, so the node would: its 400, without the round trip."""
    error = invalid_request(invalid.errors())
    return BadRequest(400, error.message, type=error.type, code=error.code, param=error.param)
