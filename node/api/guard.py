"""The guard in front of /v1: the API key check and the request size limit."""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from .errors import APIError

# Methods whose /v1 body is read as JSON whatever the client labels it (curl -d says form data).
JSON_BODIES = ("POST", "PUT")


class Guard:
    """ASGI middleware for /v1: the API key check and the request size limit.

    Plain ASGI rather than an HTTP middleware so streamed responses and client
    disconnects pass through untouched.
    """

    def __init__(self, app: ASGIApp, api_keys: tuple[bytes, ...], max_request_bytes: int) -> None:
        self.app, self.api_keys, self.max_request_bytes = app, api_keys, max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self.api_keys and not _authorized(headers.get("authorization", ""), self.api_keys):
            error = APIError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                type="authentication_error",
                code="invalid_api_key",
            )
            await error.response()(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_request_bytes:
            await self._too_large(scope, receive, send)
            return
        if scope["method"] in JSON_BODIES and "json" not in headers.get("content-type", ""):
            scope = {
                **scope,
                "headers": [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                + [(b"content-type", b"application/json")],
            }
        received = 0

        async def counted_receive() -> ASGIMessage:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_request_bytes:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted_receive, send)
        except _BodyTooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = APIError(
            413,
            f"the request body is larger than this node accepts ({self.max_request_bytes} bytes)",
            code="request_too_large",
        )
        await error.response()(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _authorized(authorization: str, keys: tuple[bytes, ...]) -> bool:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    presented = token.strip().encode()
    # Compare against every key so the time taken doesn't tell which one nearly matched.
    return any([hmac.compare_digest(presented, key) for key in keys])
