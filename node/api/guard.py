"""The guard in front of the API: the Host and Origin checks, the API key, the size limit, JSON bodies.

A web page the operator happens to open can send requests to a node on the same
machine: "simple" requests (text/plain, form data) need no preflight, and a
name of the page's own that it rebinds to 127.0.0.1 lets it read the answers.
So a node on loopback answers only to its loopback names, a request from a
browser page of another origin is refused, and a body must say it is JSON.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from .errors import APIError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")  # what a client on this machine calls a loopback node
JSON = "application/json"
# What steers the whole network, never open to whoever can reach a node: a node other hosts can reach
# answers it only with API keys configured (README, Security).
OPERATOR_ONLY = (("PUT", "/v1/routing/table"),)


def loopback(host: str) -> bool:
    """Whether an address to bind to is reachable from this machine only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class Guard:
    """ASGI middleware: the Host check on a loopback node, then for /v1 the Origin check, the API key,
    the request size limit and JSON bodies.

    Plain ASGI rather than an HTTP middleware so streamed responses and client
    disconnects pass through untouched.
    """

    def __init__(
        self, app: ASGIApp, api_keys: tuple[bytes, ...], max_request_bytes: int, *, bind: str
    ) -> None:
        self.app, self.api_keys, self.max_request_bytes = app, api_keys, max_request_bytes
        self.bind, self.loopback = bind, loopback(bind)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._misdirected(scope, headers)
        if refusal is None and scope["path"].startswith("/v1/"):
            refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal.response()(scope, receive, send)
            return
        if not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
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
            await self._too_large().response()(scope, receive, send)

    def _misdirected(self, scope: Scope, headers: Headers) -> APIError | None:
        """On loopback, a Host other than this node's loopback names and port: a name rebound to it."""
        if not self.loopback:
            return None
        host = headers.get("host", "").lower()
        name, port = _split_host(host)
        _, listening = scope.get("server") or (None, None)  # ASGI leaves it out on a Unix socket
        if name in LOOPBACK_NAMES and (listening is None or port == str(listening)):
            return None
        return APIError(
            421,
            f"this node listens on loopback and answers only to {', '.join(LOOPBACK_NAMES)} with its port,"
            f" not to Host {host!r}",
            code="misdirected_request",
        )

    def _refusal(self, scope: Scope, headers: Headers) -> APIError | None:
        """Why a /v1 request is refused before it reaches a route, if it is."""
        if not (self.loopback or self.api_keys) and (scope["method"], scope["path"]) in OPERATOR_ONLY:
            return APIError(
                403,
                f"this node listens on {self.bind}, where other hosts reach it, and has no API key:"
                f" {scope['method']} {scope['path']} needs one (start the node with --api-key)",
                type="permission_error",
                code="api_key_required",
            )
        origin = headers.get("origin")
        if origin is not None and urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
            # Browsers name the page that sent a request; the node's own dashboard has its origin.
            return APIError(
                403,
                f"a request from a page of another origin ({origin}) is refused",
                type="permission_error",
                code="cross_origin",
            )
        if self.api_keys and not _authorized(headers.get("authorization", ""), self.api_keys):
            return APIError(
                401,
                "missing or wrong API key: send 'Authorization: Bearer <key>'",
                type="authentication_error",
                code="invalid_api_key",
            )
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_request_bytes:
            return self._too_large()
        media = headers.get("content-type", "").partition(";")[0].strip().lower()
        carries_body = declared not in ("", "0") or "transfer-encoding" in headers
        if media != JSON and (media or carries_body):
            return APIError(
                415,
                f"a request body must be JSON: send 'Content-Type: {JSON}' (got {media or 'none'!r})",
                code="unsupported_media_type",
            )
        return None

    def _too_large(self) -> APIError:
        return APIError(
            413,
            f"the request body is larger than this node accepts ({self.max_request_bytes} bytes)",
            code="request_too_large",
        )


class _BodyTooLarge(Exception):
    pass


def _split_host(host: str) -> tuple[str, str]:
    """A Host header's name and port ("80" when it names none, as HTTP means)."""
    name, colon, port = host.rpartition(":")
    if not colon or (name.startswith("[") and not name.endswith("]")):
        return host, "80"
    return name, port


def _authorized(authorization: str, keys: tuple[bytes, ...]) -> bool:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    presented = token.strip().encode()
    # Compare against every key so the time taken doesn't tell which one nearly matched.
    return any([hmac.compare_digest(presented, key) for key in keys])
