"""Request and response on streams: a sealed request, then reply frames until an end or an error frame,
with one total deadline per call (trap 6 of docs/libp2p.md).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
from libp2p.abc import IHost, INetStream
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID

from core.envelope import Envelope, EnvelopeRejected, Opener, seal
from core.identity import Identity

from .addresses import peer_of
from .errors import FrameTooLarge, PeerUnavailable, RemoteError, RequestTimeout, describe
from .framing import FrameReader, write_frame

log = logging.getLogger("swarm.transport")

INBOUND_REQUEST_TIMEOUT_S = 30.0  # a peer that opened a stream has this long to send its request
# A peer may hold this many of our handlers' streams open at once, of every protocol together; one
# more is refused before its request is read, so a peer can't make this node hold unbounded streams.
INBOUND_STREAMS_PER_PEER = 16

Handler = Callable[[str, dict[str, Any]], AsyncIterator[dict[str, Any]]]  # an async generator


@dataclass
class TransportCounters:
    """What /metrics shows of the network layer."""

    dropped: Counter[str]  # messages dropped, by reason (swarm_dropped_messages_total{reason})
    # peers' requests refused before any work, by reason (swarm_refused_requests_total{reason})
    refused: Counter[str] = field(default_factory=Counter)
    requests_served: int = 0
    requests_failed: int = 0


class Requests:
    """Both sides of the exchange: serving handlers, and asking peers."""

    def __init__(
        self,
        identity: Identity,
        host: IHost,
        opener: Opener,
        counters: TransportCounters,
        dial: Callable[[ID], Awaitable[None]],
    ) -> None:
        self._identity, self._host, self._opener = identity, host, opener
        self._counters, self._dial = counters, dial
        self._inbound: Counter[str] = Counter()  # peer -> streams of ours it holds open now

    def handle(self, protocol: str, handler: Handler) -> None:
        self._host.set_stream_handler(TProtocol(protocol), partial(self._serve, protocol, handler))

    async def request(
        self, peer_id: str, protocol: str, body: dict[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        async with self.stream(peer_id, protocol, body, timeout=timeout) as replies:
            async for reply in replies:
                return reply
        raise RemoteError(f"peer {peer_id} on {protocol} finished without a reply")

    @asynccontextmanager
    async def stream(
        self, peer_id: str, protocol: str, body: dict[str, Any], *, timeout: float
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        frame = seal(self._identity, "request", body)
        peer = peer_of(peer_id)
        with trio.move_on_after(timeout) as deadline:
            await self._dial(peer)
            try:
                stream = await self._host.new_stream(peer, [TProtocol(protocol)])
            except Exception as exc:  # libp2p stream errors come as groups and wrappers of many kinds
                # A connection can be dead without knowing it (a relay's circuit torn down under it, the
                # loser of two peers dialing each other at once): drop the peer's idle ones, dial anew.
                # Connections carrying streams are left alone: a slow answer on one is no sign it is dead.
                log.info("can't open %s to %s (%s): dialing it again", protocol, peer_id, describe(exc))
                for conn in self._host.get_network().get_connections(peer):
                    if not conn.get_streams():
                        await conn.close()
                await self._dial(peer)
                try:
                    stream = await self._host.new_stream(peer, [TProtocol(protocol)])
                except Exception as exc:
                    raise PeerUnavailable(f"can't open {protocol} to {peer_id}: {describe(exc)}") from None
            replies = _Replies(self, stream, peer_id, protocol)
            try:
                await self._send(stream, frame, peer_id)
                yield replies
            finally:
                if replies.finished:
                    await self._finish(stream, None)
                else:
                    with trio.CancelScope(shield=True):
                        await stream.reset()
        if deadline.cancelled_caught:
            raise RequestTimeout(f"{protocol} to {peer_id} did not finish within {timeout:g} s")

    async def _send(self, stream: INetStream, frame: bytes, peer_id: str) -> None:
        try:
            await write_frame(stream, frame)
        except BaseLibp2pError as exc:
            raise PeerUnavailable(f"peer {peer_id} went away: {describe(exc)}") from None

    async def receive(self, frames: FrameReader, peer_id: str) -> Envelope:
        """The next frame's envelope, checked against the peer; anything wrong there ends the exchange."""
        try:
            data = await frames.read()
        except FrameTooLarge as exc:
            self._opener.dropped["oversized"] += 1
            raise RemoteError(f"peer {peer_id} sent a frame we refused: {exc}") from None
        except BaseLibp2pError as exc:
            raise PeerUnavailable(f"peer {peer_id} went away mid-exchange: {describe(exc)}") from None
        try:
            return self._opener.open(data, expected_sender=peer_id)
        except EnvelopeRejected as exc:
            raise RemoteError(f"peer {peer_id} sent a frame we refused ({exc})") from None

    async def _serve(self, protocol: str, handler: Handler, stream: INetStream) -> None:
        sender = stream.muxed_conn.peer_id.to_base58()
        if self._inbound[sender] >= INBOUND_STREAMS_PER_PEER:
            self._counters.requests_failed += 1
            self._counters.refused["streams"] += 1
            message = (
                f"request refused: peer {sender} has {INBOUND_STREAMS_PER_PEER} streams open here, the most"
            )
            await self._finish(stream, seal(self._identity, "error", {"message": message}))
            return
        self._inbound[sender] += 1
        try:
            await self._serve_admitted(protocol, handler, stream, sender)
        finally:
            self._inbound[sender] -= 1
            if not self._inbound[sender]:
                del self._inbound[sender]

    async def _serve_admitted(self, protocol: str, handler: Handler, stream: INetStream, sender: str) -> None:
        try:
            with trio.fail_after(INBOUND_REQUEST_TIMEOUT_S):
                request = await self.receive(FrameReader(stream), sender)
            if request.kind != "request":
                raise RemoteError(f"expected a request, got a {request.kind!r} frame")
        except (RemoteError, trio.TooSlowError) as exc:
            self._counters.requests_failed += 1
            reason = str(exc) or f"no request within {INBOUND_REQUEST_TIMEOUT_S:g} s"
            log.info("refused a %s request from %s: %s", protocol, sender, reason)
            await self._finish(
                stream, seal(self._identity, "error", {"message": f"request refused: {reason}"})
            )
            return
        except PeerUnavailable:
            self._counters.requests_failed += 1
            await self._finish(stream, None)
            return
        if await self._answer(protocol, handler, request.body, sender, stream):
            self._counters.requests_served += 1
        else:
            self._counters.requests_failed += 1
        await self._finish(stream, None)

    async def _answer(
        self, protocol: str, handler: Handler, body: dict[str, Any], sender: str, stream: INetStream
    ) -> bool:
        """Relay the handler's replies. False if it raised (the peer is told why) or the peer left unanswered;
        a peer may leave once it has what it wanted (request() takes the first reply).
        """
        replies, answered = handler(sender, body), False
        try:
            while True:
                try:
                    reply = await replies.__anext__()
                    frame = seal(self._identity, "reply", reply)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the handler's failure goes back to the caller, never up to libp2p
                    log.warning(
                        "%s handler failed for %s: %s", protocol, sender, describe(exc), exc_info=True
                    )
                    await self._send(
                        stream, seal(self._identity, "error", {"message": describe(exc)}), sender
                    )
                    return False
                await self._send(stream, frame, sender)
                answered = True
            await self._send(stream, seal(self._identity, "end", {}), sender)
            return True
        except PeerUnavailable as exc:
            log.log(
                logging.DEBUG if answered else logging.INFO, "%s for %s stopped: %s", protocol, sender, exc
            )
            return answered
        finally:
            if isinstance(replies, AsyncGenerator):  # closed now, so its cleanup runs when the peer leaves
                await replies.aclose()

    async def _finish(self, stream: INetStream, last: bytes | None) -> None:
        with trio.CancelScope(shield=True):
            try:
                if last is not None:
                    await write_frame(stream, last)
                await stream.close()
            except BaseLibp2pError:
                await stream.reset()


class _Replies:
    """The replies of one request, read frame by frame until the handler's end frame."""

    def __init__(self, requests: Requests, stream: INetStream, peer_id: str, protocol: str) -> None:
        self._requests, self._peer_id, self._protocol = requests, peer_id, protocol
        self._frames = FrameReader(stream)
        self.finished = False

    def __aiter__(self) -> _Replies:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self.finished:
            raise StopAsyncIteration
        envelope = await self._requests.receive(self._frames, self._peer_id)
        if envelope.kind == "reply":
            return envelope.body
        self.finished = True
        if envelope.kind == "end":
            raise StopAsyncIteration
        if envelope.kind == "error":
            raise RemoteError(f"peer {self._peer_id} on {self._protocol}: {envelope.body.get('message')}")
        raise RemoteError(f"peer {self._peer_id} on {self._protocol} sent a {envelope.kind!r} frame")
