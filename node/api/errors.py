"""Every failure leaves as an OpenAI-style body, {"error": {"message", "type", "param", "code"}}, with
the status a client library expects: 400 for a bad request, 401 for a wrong key, 404 for an unknown
model, 413 for an oversized body, 429 (+ Retry-After) when a model's queue is full, 503 (+ Retry-After)
while an engine restarts. The schema documents each route's own.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from core.wire.errors import ErrorDetail, ErrorResponse, invalid_request

from ..failures import failure

log = logging.getLogger("swarm.api")


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = ErrorDetail(message=message, type=type, param=param, code=code)
        self.headers = headers or {}

    @classmethod
    def answering(cls, status: int, detail: ErrorDetail, headers: dict[str, str] | None = None) -> APIError:
        return cls(
            status, detail.message, type=detail.type, code=detail.code, param=detail.param, headers=headers
        )

    @classmethod
    def of(cls, error: Exception) -> APIError:
        """A failure to serve a request (node.failures), as the caller is told of it."""
        kind = failure(error)
        retry_after = kind.retry_after(error)
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return cls.answering(kind.status, kind.detail(error), headers)

    def body(self) -> ErrorResponse:
        return ErrorResponse(error=self.detail)

    def response(self) -> JSONResponse:
        return JSONResponse(
            self.body().model_dump(mode="json"), status_code=self.status, headers=self.headers
        )


_MEANING = {
    400: "Malformed JSON, a missing field, a bad value, or a prompt longer than the context",
    401: "Missing or wrong API key (when the node has keys)",
    403: "Refused: a page of another origin, or a node reachable from other hosts without an API key",
    404: "Nothing of that name here: a model, a peer, or a service this node does not run",
    413: "The request body is larger than the node accepts",
    415: "The request has a body that is not labelled Content-Type: application/json",
    421: "A node on loopback answers only to localhost, 127.0.0.1 and [::1] with its port in Host",
    429: "The model's queue is full: retry after Retry-After seconds",
    500: "The engine failed, or the node did (then the body holds only a request id: the log has the rest)",
    503: "Unavailable for now (an engine restarting, no expert with a say, a peer not answering)",
}
GUARDED = (401, 403, 413, 415, 421)  # what node.api.guard answers for any /v1 route, before it is reached
_RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The schema's entries for the error answers a route gives."""
    return {
        status: {
            "model": ErrorResponse,
            "description": _MEANING[status],
            **({"headers": _RETRY_AFTER} if status in (429, 503) else {}),
        }
        for status in statuses
    }


def _allowed(routers: Sequence[APIRouter], request: Request) -> str:
    """Every method the path takes. Starlette's 405 names only those of the first route on the path,
    and a path can have one route per method (GET and PUT /v1/routing/table)."""
    methods: set[str] = set()
    for route in (route for router in routers for route in router.routes):
        if isinstance(route, APIRoute) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """OpenAI-shaped bodies for every failure, FastAPI's own (validation, 404, 405) included; `routers`
    are the app's, whose methods a 405 lists."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return APIError.answering(400, invalid_request(exc.errors())).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed(routers, request)
        return APIError(exc.status_code, str(exc.detail), type=kind, headers=headers).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # An exception's text can name paths, keys or peers: the client gets an id to quote, the log the rest.
        request_id = secrets.token_hex(8)
        log.error("request %s (%s %s) failed", request_id, request.method, request.url.path, exc_info=exc)
        return APIError(
            500,
            f"internal error: request {request_id} failed; the node's log has the details",
            type="server_error",
            code="internal_error",
            headers={"X-Request-Id": request_id},
        ).response()
