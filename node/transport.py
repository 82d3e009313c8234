"""The node's one door to the peer network: a hardened py-libp2p host and the few things the node needs.

Run it in the node's trio nursery; `run` returns control once it listens:

    transport = Transport(identity, port=8421, bootstrap=["/ip4/.../tcp/8421/p2p/12D3KooW..."])
    transport.handle("/swarm/echo/1.0.0", echo)        # an async generator of replies
    await nursery.start(transport.run)
    reply = await transport.request(peer_id, "/swarm/echo/1.0.0", {"x": 1}, timeout=5)

Cancelling the nursery stops it. A Transport runs once. Every message is a
sealed envelope (core.envelope), checked against the peer that sent it.

What it adds to py-libp2p 0.8.1, each for a trap of shared/LIBP2P.md:
Noise as the only security and yamux as the only muxer (1, 3), one
connection per peer (2), our own length-prefixed frames up to
MAX_MESSAGE_BYTES (3), the negative dial cache cleared before every dial
(4), our own address book (5), one total deadline per call and our own
heartbeat (6), paced publishing (7), a lock on the listening port (9), the
libp2p logger at ERROR and exception groups flattened (10).
"""

from __future__ import annotations

import json
import logging
import os
import struct
import tempfile
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_noise_key_pair
from libp2p.custom_types import TProtocol
from libp2p.exceptions import BaseLibp2pError, MultiError
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.host.ping import perform_ping_roundtrip
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.peer.peerstore import PeerStoreError
from libp2p.pubsub.gossipsub import PROTOCOL_ID as GOSSIPSUB_V10
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11 as GOSSIPSUB_V11
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from libp2p.utils.address_validation import expand_wildcard_address

from core.envelope import MAX_MESSAGE_BYTES, Envelope, EnvelopeRejected, MessageTooLarge, Opener, seal
from core.identity import Identity

from .locks import LockHeld, PidLock

log = logging.getLogger("swarm.transport")

DEFAULT_HEARTBEAT_INTERVAL_S = 2.0
DEFAULT_HEARTBEAT_TIMEOUT_S = 1.0
DEFAULT_HEARTBEAT_MISSES = 3
DOWN_PROBE_MAX_INTERVAL_S = 30.0  # a down peer is probed less and less often, down to this
PUBLISH_MIN_INTERVAL_S = 0.25  # per topic: well under GossipSub's 10 messages/s spam limit (trap 7)
MAX_PUBLISH_BYTES = 512 * 1024  # GossipSub drops inbound RPCs over 1 MiB without a word
INBOUND_REQUEST_TIMEOUT_S = 30.0  # a peer that opened a stream has this long to send its request
CONNECT_TIMEOUT_S = 10.0
BOOTSTRAP_RETRY_MAX_S = 30.0
IDENTIFY_WAIT_S = 5.0
MAX_ADDRS_PER_PEER = 8
READ_CHUNK_BYTES = 64 * 1024  # fewer, larger reads: each costs libp2p a yamux window update
LISTENER_BUFFER = 256  # messages or events a slow subscriber may fall behind before some are dropped

_HEADER = struct.Struct(">I")  # frame length, then that many bytes of envelope

Handler = Callable[[str, dict[str, Any]], AsyncIterator[dict[str, Any]]]  # an async generator


def libp2p_key_pair(identity: Identity) -> KeyPair:
    """The libp2p key pair of `identity`: the same Ed25519 key, so libp2p's peer id is ours."""
    return create_new_key_pair(identity.seed())


class TransportError(Exception):
    """Base of the errors a Transport raises."""


class TransportStartError(TransportError):
    """The transport can't start (port taken, bad address); the message says what to do."""


class PeerUnavailable(TransportError):
    """The peer can't be reached, or went away (connection refused, killed, stream reset)."""


class RequestTimeout(TransportError):
    """The call's total deadline passed (the peer may be frozen or overloaded)."""


class RemoteError(TransportError):
    """The peer answered with an error: its handler raised, or it refused our message."""


class FrameTooLarge(TransportError):
    """A frame header announced more than MAX_MESSAGE_BYTES; the frame is refused unread."""


@dataclass(frozen=True, slots=True)
class PeerEvent:
    peer_id: str
    state: Literal["up", "down"]


@dataclass
class TransportCounters:
    """What /metrics shows of the network layer."""

    dropped: Counter[str]  # messages dropped, by reason (swarm_dropped_messages_total{reason})
    requests_served: int = 0
    requests_failed: int = 0


@dataclass
class _Health:
    state: Literal["up", "down"] | None = None  # None until the first probe or connection says
    misses: int = 0
    next_probe: float = 0.0


def exception_leaves(exc: BaseException) -> list[BaseException]:
    """The real errors inside nested exception groups (trio and libp2p nest them many levels deep)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in exception_leaves(inner)]
    return [exc]


def describe(exc: BaseException) -> str:
    """One line for a person: each leaf error and, after a colon, the root causes libp2p wraps it around."""
    parts = []
    for leaf in exception_leaves(exc):
        text = str(leaf) or type(leaf).__name__
        roots = [str(root) for root in _root_causes(leaf) if root is not leaf and str(root) not in text]
        parts.append(text + (": " + "; ".join(dict.fromkeys(roots)) if roots else ""))
    return "; ".join(parts)


def _root_causes(exc: BaseException) -> list[BaseException]:
    inner: list[BaseException] = []
    if isinstance(exc, BaseExceptionGroup):
        inner = list(exc.exceptions)
    elif isinstance(exc, MultiError):
        inner = list(exc.errors)
    elif exc.__cause__ is not None:
        inner = [exc.__cause__]
    return [root for e in inner for root in _root_causes(e)] if inner else [exc]


async def write_frame(stream: INetStream, data: bytes) -> None:
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageTooLarge(f"a frame of {len(data)} bytes is over the limit of {MAX_MESSAGE_BYTES} bytes")
    await stream.write(_HEADER.pack(len(data)) + data)


class FrameReader:
    """The frames of one stream. A stream read returns whatever has arrived (trap 3): read in a loop,
    asking for a chunk at a time, and keep what belongs to the next frame.
    """

    def __init__(self, stream: INetStream) -> None:
        self._stream = stream
        self._buffer = bytearray()

    async def read(self) -> bytes:
        await self._fill(_HEADER.size)
        (size,) = _HEADER.unpack_from(self._buffer)
        if size > MAX_MESSAGE_BYTES:
            raise FrameTooLarge(f"a frame of {size} bytes is over the limit of {MAX_MESSAGE_BYTES} bytes")
        end = _HEADER.size + size
        await self._fill(end)
        frame = bytes(self._buffer[_HEADER.size : end])
        del self._buffer[:end]
        return frame

    async def _fill(self, size: int) -> None:
        while len(self._buffer) < size:
            chunk = await self._stream.read(max(size - len(self._buffer), READ_CHUNK_BYTES))
            if not chunk:
                raise PeerUnavailable(f"the stream ended {size - len(self._buffer)} bytes short of a frame")
            self._buffer += chunk


def _quiet_libp2p_logs() -> None:
    """libp2p at ERROR: it logs ordinary stream ends as errors (trap 10). Left alone under LIBP2P_DEBUG."""
    if os.environ.get("LIBP2P_DEBUG"):
        return
    logging.getLogger("libp2p").setLevel(logging.ERROR)
    for name, logger in logging.root.manager.loggerDict.items():
        # Some of its modules set their own level on import, which would win over the parent's.
        if name.startswith("libp2p.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)
    # These two log every failed dial and stream open at ERROR, which the transport already raises
    # as PeerUnavailable with the cause: a down peer's heartbeat would log an error at every probe.
    for name in ("libp2p.transport.tcp.tcp", "libp2p.host.basic_host"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def default_lock_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return (
        Path(runtime) / "swarm-ports"
        if runtime
        else Path(tempfile.gettempdir()) / f"swarm-ports-{os.getuid()}"
    )


@contextmanager
def _port_lock(directory: Path, port: int) -> Iterator[None]:
    """An exclusive lock on a TCP port: libp2p binds with SO_REUSEPORT, so a second bind succeeds (trap 9)."""
    try:
        with PidLock(directory / f"tcp-{port}.lock"):
            yield
    except LockHeld as held:
        raise TransportStartError(
            f"p2p port {port} is already used by another swarm node "
            f"(pid {held.holder}, lock {held.path}): stop that node or pick another p2p port"
        ) from None


class _ConnectionWatcher(INotifee):
    """Hands libp2p's connection events to the transport without blocking libp2p, which awaits notifees."""

    def __init__(self, on_connected: Callable[[ID], None]) -> None:
        self._on_connected = on_connected

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        self._on_connected(conn.muxed_conn.peer_id)

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        return None  # the heartbeat decides when a peer is down: a dropped connection may come back

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: multiaddr.Multiaddr) -> None:
        return None


class _Replies:
    """The replies of one request, read frame by frame until the handler's end frame."""

    def __init__(self, transport: Transport, stream: INetStream, peer_id: str, protocol: str) -> None:
        self._transport, self._peer_id, self._protocol = transport, peer_id, protocol
        self._frames = FrameReader(stream)
        self.finished = False

    def __aiter__(self) -> _Replies:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self.finished:
            raise StopAsyncIteration
        envelope = await self._transport._receive(self._frames, self._peer_id)
        if envelope.kind == "reply":
            return envelope.body
        self.finished = True
        if envelope.kind == "end":
            raise StopAsyncIteration
        if envelope.kind == "error":
            raise RemoteError(f"peer {self._peer_id} on {self._protocol}: {envelope.body.get('message')}")
        raise RemoteError(f"peer {self._peer_id} on {self._protocol} sent a {envelope.kind!r} frame")


class Transport:
    """A libp2p host with Noise, yamux, GossipSub, a Kademlia DHT and our own heartbeat and address book."""

    def __init__(
        self,
        identity: Identity,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bootstrap: Iterable[str] = (),
        enable_mdns: bool = False,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL_S,
        heartbeat_timeout: float = DEFAULT_HEARTBEAT_TIMEOUT_S,
        heartbeat_misses: int = DEFAULT_HEARTBEAT_MISSES,
        lock_dir: Path | None = None,
    ) -> None:
        _quiet_libp2p_logs()
        self.identity = identity
        self.peer_id = identity.peer_id
        self._listen = multiaddr.Multiaddr(f"/{'ip6' if ':' in host else 'ip4'}/{host}/tcp/{port}")
        self._port = port
        self._bootstrap = list(bootstrap)
        for address in self._bootstrap:
            try:
                _peer_address(address)
            except ValueError as exc:
                raise TransportStartError(f"bootstrap address {exc}") from None
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.heartbeat_misses = heartbeat_misses
        self._lock_dir = lock_dir or default_lock_dir()
        self._opener = Opener()
        self.counters = TransportCounters(dropped=self._opener.dropped)

        key_pair = libp2p_key_pair(identity)
        noise = NoiseTransport(key_pair, noise_privkey=create_noise_key_pair().private_key)
        self._host = new_host(
            key_pair=key_pair,
            sec_opt={NOISE_PROTOCOL: noise},
            muxer_opt={TProtocol(YAMUX_PROTOCOL): Yamux},
            connection_config=ConnectionConfig(max_connections_per_peer=1),
            enable_mDNS=enable_mdns,
            addrs_factory=_concrete,
        )
        network = self._host.get_network()
        assert isinstance(network, Swarm)
        self._swarm = network
        # Every caller bounds its own dial and retries on its own schedule: libp2p's retries
        # would only spend the caller's deadline on a peer that just refused.
        network.retry_config = RetryConfig(max_retries=0)
        network.register_notifee(_ConnectionWatcher(self._on_connected))
        self._gossipsub = GossipSub(
            protocols=[GOSSIPSUB_V11, GOSSIPSUB_V10],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_interval=1,
        )
        self._pubsub = Pubsub(self._host, self._gossipsub)
        self._dht = KadDHT(self._host, DHTMode.SERVER)

        self._book: dict[str, dict[str, None]] = {}  # peer id -> its addresses (an ordered set), newest last
        self._health: dict[str, _Health] = {}
        self._subscribers: dict[str, list[trio.MemorySendChannel[tuple[str, dict[str, Any]]]]] = {}
        self._event_listeners: list[trio.MemorySendChannel[PeerEvent]] = []
        self._next_publish: dict[str, float] = {}
        self._nursery: trio.Nursery | None = None
        self._joined = trio.Event()  # set once a bootstrap peer (if any) has answered

    # ---- life cycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, join the bootstrap peers and keep the heartbeat going until cancelled."""
        with ExitStack() as locks:
            if self._port:  # locked before binding, so a second node never takes connections meant for us
                locks.enter_context(_port_lock(self._lock_dir, self._port))
            async with self._host.run([self._listen]):
                bound = self._host.get_transport_addrs()
                if not bound:
                    raise TransportStartError(
                        f"can't listen on {self._listen}: the address is taken or not on this machine"
                    )
                if not self._port:
                    locks.enter_context(_port_lock(self._lock_dir, int(bound[0].value_for_protocol("tcp"))))
                # The heartbeat owns reconnecting (negative cache cleared, down peers backed off);
                # libp2p's auto-connector would also dial every peer-store entry every 10 s.
                await self._swarm.auto_connector.stop()
                async with (
                    background_trio_service(self._pubsub),
                    background_trio_service(self._gossipsub),
                    background_trio_service(self._dht),
                    trio.open_nursery() as nursery,
                ):
                    await self._pubsub.wait_until_ready()
                    self._nursery = nursery
                    nursery.start_soon(self._heartbeat)
                    for address in self._bootstrap:
                        nursery.start_soon(self._join, address)
                    if not self._bootstrap:
                        self._joined.set()
                    log.info("p2p listening on %s", ", ".join(self.listen_addrs))
                    task_status.started()
                    await trio.sleep_forever()

    @property
    def listen_addrs(self) -> list[str]:
        """Where peers can reach this node, each ending in /p2p/<peer id> (empty until it runs)."""
        return [str(a) for a in self._host.get_addrs()]

    def _running(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("the transport is not running: start it with nursery.start(transport.run)")
        return self._nursery

    # ---- peers, addresses and dialing

    async def connect(self, address: str, *, timeout: float = CONNECT_TIMEOUT_S) -> str:
        """Dial a multiaddr ending in /p2p/<peer id>; returns that peer id. Raises PeerUnavailable."""
        info = _peer_address(address)
        peer_id = info.peer_id.to_base58()
        self._remember(peer_id, info.addrs)
        with trio.move_on_after(timeout):
            await self._dial(info.peer_id)
            return peer_id
        raise PeerUnavailable(f"{address} did not complete a connection within {timeout:g} s")

    def add_addresses(self, peer_id: str, addrs: Iterable[str]) -> None:
        """Addresses a peer is known by (from its announcement, say); bad or foreign ones are skipped."""
        parsed = []
        for address in addrs:
            try:
                addr = multiaddr.Multiaddr(address)
            except ValueError as exc:
                log.debug("skipped address %r of %s: %s", address, peer_id, exc)
                continue
            owner = addr.get_peer_id()
            if owner is not None and owner != peer_id:
                log.debug("skipped address %s given for %s: it names another peer", address, peer_id)
                continue
            parsed.append(addr)
        self._remember(peer_id, parsed)

    def addresses(self, peer_id: str) -> list[str]:
        """The address book's entries for a peer, newest last."""
        return list(self._book.get(peer_id, ()))

    def peer_states(self) -> dict[str, str]:
        """Every peer the heartbeat has an opinion on: "up" or "down"."""
        return {peer: health.state for peer, health in self._health.items() if health.state is not None}

    def peer_events(self) -> trio.MemoryReceiveChannel[PeerEvent]:
        """A channel of every later change of a peer's state; close it to stop listening."""
        send, receive = trio.open_memory_channel[PeerEvent](LISTENER_BUFFER)
        self._event_listeners.append(send)
        return receive

    def _remember(self, peer_id: str, addrs: Iterable[multiaddr.Multiaddr]) -> None:
        if peer_id == self.peer_id:
            return
        book = self._book.setdefault(peer_id, {})
        for addr in addrs:
            if addr.get_peer_id() is not None:
                addr = addr.decapsulate_code(multiaddr.protocols.P_P2P)
            names = {p.name for p in addr.protocols()}
            if "tcp" not in names or "p2p-circuit" in names:
                continue  # only TCP is dialed here
            key = str(addr)
            book.pop(key, None)
            book[key] = None
            while len(book) > MAX_ADDRS_PER_PEER:
                del book[next(iter(book))]
        self._health.setdefault(peer_id, _Health())

    def _absorb(self, peer: ID) -> None:
        """Copy what the peer store learned (identify, DHT, mDNS) into the address book before it expires."""
        try:
            addrs = self._host.get_peerstore().addrs(peer)
        except PeerStoreError:
            return
        self._remember(peer.to_base58(), addrs)

    def _is_connected(self, peer: ID) -> bool:
        return any(not conn.is_closed for conn in self._swarm.get_connections(peer))

    async def _dial(self, peer: ID) -> None:
        """Connect unless connected; the caller bounds the time. Raises PeerUnavailable."""
        if self._is_connected(peer):
            return
        addrs = [multiaddr.Multiaddr(a) for a in self._book.get(peer.to_base58(), ())]
        if not addrs:
            await self._joined.wait()  # the DHT knows nothing before a bootstrap peer answers
            found = await self._dht.find_peer(peer)
            if found is not None:
                self._remember(peer.to_base58(), found.addrs)
                addrs = [multiaddr.Multiaddr(a) for a in self._book.get(peer.to_base58(), ())]
        if not addrs:
            raise PeerUnavailable(f"no known address for peer {peer} (not in the address book nor the DHT)")
        self._swarm.unblock_peer(peer)  # a restarted peer is dialed at once (trap 4)
        try:
            await self._host.connect(PeerInfo(peer, addrs))
        except Exception as exc:  # libp2p dial errors come as groups and wrappers of many kinds
            raise PeerUnavailable(
                f"can't connect to {peer} at {', '.join(map(str, addrs))}: {describe(exc)}"
            ) from None

    def _on_connected(self, peer: ID) -> None:
        if self._nursery is None:
            return
        peer_id = peer.to_base58()
        self._mark_alive(peer_id)
        self._nursery.start_soon(self._learn, peer)

    async def _learn(self, peer: ID) -> None:
        """Once identify has told the peer's listen addresses: keep them, and give the peer to the DHT."""
        with trio.move_on_after(IDENTIFY_WAIT_S):
            # 0.8.1 has no event for a finished identify: its protocol list showing up is the sign.
            while not self._identified(peer):
                await trio.sleep(0.02)
        self._absorb(peer)
        addrs = [multiaddr.Multiaddr(a) for a in self._book.get(peer.to_base58(), ())]
        if addrs:
            await self._dht.routing_table.add_peer(PeerInfo(peer, addrs))

    def _identified(self, peer: ID) -> bool:
        try:
            return bool(self._host.get_peerstore().supports_protocols(peer, [str(PING_PROTOCOL)]))
        except PeerStoreError:
            return False

    async def _join(self, address: str) -> None:
        """Connect to one bootstrap peer, retrying with backoff, then learn the network through the DHT."""
        delay = 0.5
        while True:
            try:
                peer_id = await self.connect(address)
                break
            except PeerUnavailable as exc:
                log.warning("bootstrap peer %s failed: %s; retrying in %.1f s", address, exc, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, BOOTSTRAP_RETRY_MAX_S)
        log.info("joined the swarm through %s", address)
        with trio.move_on_after(CONNECT_TIMEOUT_S):
            await self._learn(ID.from_base58(peer_id))  # in the routing table before the lookup below
            await self._dht.refresh_routing_table()
        self._joined.set()

    # ---- heartbeat

    async def _heartbeat(self) -> None:
        peerstore = self._host.get_peerstore()
        while True:
            tick = trio.current_time()
            for peer in peerstore.peers_with_addrs():
                self._absorb(peer)
            for peer in self._host.get_connected_peers():
                self._health.setdefault(peer.to_base58(), _Health())
            async with trio.open_nursery() as probes:
                for peer_id, health in self._health.items():
                    if health.next_probe <= tick:
                        probes.start_soon(self._probe, peer_id)
            await trio.sleep_until(tick + self.heartbeat_interval)

    async def _probe(self, peer_id: str) -> None:
        peer = ID.from_base58(peer_id)
        with trio.move_on_after(self.heartbeat_timeout):
            try:
                await self._dial(peer)
                stream = await self._host.new_stream(peer, [PING_PROTOCOL])
                try:
                    await perform_ping_roundtrip(stream)
                finally:
                    with trio.CancelScope(shield=True):
                        await stream.reset()
            except Exception as exc:  # any failure of any layer is a missed beat
                log.debug("heartbeat to %s failed: %s", peer_id, describe(exc))
            else:
                self._mark_alive(peer_id)
                return
        self._mark_missed(peer_id)

    def _mark_alive(self, peer_id: str) -> None:
        health = self._health.setdefault(peer_id, _Health())
        health.misses, health.next_probe = 0, 0.0
        if health.state != "up":
            health.state = "up"
            self._emit(PeerEvent(peer_id, "up"))

    def _mark_missed(self, peer_id: str) -> None:
        health = self._health[peer_id]
        health.misses += 1
        beyond = health.misses - self.heartbeat_misses
        if beyond < 0:
            return
        backoff = min(self.heartbeat_interval * 2**beyond, DOWN_PROBE_MAX_INTERVAL_S)
        health.next_probe = trio.current_time() + backoff
        if health.state != "down":
            was_up = health.state == "up"
            health.state = "down"
            if was_up:
                log.info("peer %s is down: %d heartbeats missed", peer_id, health.misses)
                self._emit(PeerEvent(peer_id, "down"))

    def _emit(self, event: PeerEvent) -> None:
        for listener in list(self._event_listeners):
            try:
                listener.send_nowait(event)
            except trio.WouldBlock:
                log.warning("a peer event listener is %d events behind: dropped %s", LISTENER_BUFFER, event)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._event_listeners.remove(listener)

    # ---- request / response

    def handle(self, protocol: str, handler: Handler) -> None:
        """Serve `protocol`: `handler(sender_peer_id, body)` yields one or more replies."""
        self._host.set_stream_handler(TProtocol(protocol), partial(self._serve, protocol, handler))

    async def request(
        self, peer_id: str, protocol: str, body: dict[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        """The first reply. `timeout` bounds everything: dial, open, write and read."""
        async with self.stream(peer_id, protocol, body, timeout=timeout) as replies:
            async for reply in replies:
                return reply
        raise RemoteError(f"peer {peer_id} on {protocol} finished without a reply")

    @asynccontextmanager
    async def stream(
        self, peer_id: str, protocol: str, body: dict[str, Any], *, timeout: float
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Every reply until the handler finishes. `timeout` is one deadline for the whole exchange,
        the caller's work inside the block included: past it the block is cancelled and RequestTimeout raised.
        """
        self._running()
        frame = seal(self.identity, "request", body)
        peer = _peer(peer_id)
        with trio.move_on_after(timeout) as deadline:
            await self._dial(peer)
            try:
                stream = await self._host.new_stream(peer, [TProtocol(protocol)])
            except Exception as exc:  # libp2p stream errors come as groups and wrappers of many kinds
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

    async def _receive(self, frames: FrameReader, peer_id: str) -> Envelope:
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
        try:
            with trio.fail_after(INBOUND_REQUEST_TIMEOUT_S):
                request = await self._receive(FrameReader(stream), sender)
            if request.kind != "request":
                raise RemoteError(f"expected a request, got a {request.kind!r} frame")
        except (RemoteError, trio.TooSlowError) as exc:
            self.counters.requests_failed += 1
            reason = str(exc) or f"no request within {INBOUND_REQUEST_TIMEOUT_S:g} s"
            log.info("refused a %s request from %s: %s", protocol, sender, reason)
            await self._finish(
                stream, seal(self.identity, "error", {"message": f"request refused: {reason}"})
            )
            return
        except PeerUnavailable:
            self.counters.requests_failed += 1
            await self._finish(stream, None)
            return
        if await self._answer(protocol, handler, request.body, sender, stream):
            self.counters.requests_served += 1
        else:
            self.counters.requests_failed += 1
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
                    frame = seal(self.identity, "reply", reply)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the handler's failure goes back to the caller, never up to libp2p
                    log.warning(
                        "%s handler failed for %s: %s", protocol, sender, describe(exc), exc_info=True
                    )
                    await self._send(stream, seal(self.identity, "error", {"message": describe(exc)}), sender)
                    return False
                await self._send(stream, frame, sender)
                answered = True
            await self._send(stream, seal(self.identity, "end", {}), sender)
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

    # ---- pubsub

    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        """Gossip `body` on `topic`. Paced to one message per PUBLISH_MIN_INTERVAL_S per topic (trap 7)."""
        self._running()
        now = trio.current_time()
        slot = max(now, self._next_publish.get(topic, now))
        self._next_publish[topic] = slot + PUBLISH_MIN_INTERVAL_S
        await trio.sleep_until(slot)
        data = seal(self.identity, "publish", body)
        if len(data) > MAX_PUBLISH_BYTES:
            raise MessageTooLarge(
                f"a published message of {len(data)} bytes is over {MAX_PUBLISH_BYTES} bytes"
            )
        await self._pubsub.publish(topic, data)

    def subscribe(self, topic: str) -> trio.MemoryReceiveChannel[tuple[str, dict[str, Any]]]:
        """(sender peer id, body) of every checked message other peers publish on `topic`; close to stop."""
        nursery = self._running()
        send, receive = trio.open_memory_channel[tuple[str, dict[str, Any]]](LISTENER_BUFFER)
        if topic not in self._subscribers:
            self._subscribers[topic] = []
            self._pubsub.set_topic_validator(topic, self._check_gossip, False)
            nursery.start_soon(self._pump, topic)
        self._subscribers[topic].append(send)
        return receive

    def _check_gossip(self, forwarder: ID, message: rpc_pb2.Message) -> bool:
        # libp2p has checked its own signature of the origin; ours must name that same origin.
        origin = ID(message.from_id).to_base58()
        try:
            self._opener.open(message.data, expected_sender=origin)
        except EnvelopeRejected as exc:
            log.info("dropped a gossip message from %s (via %s): %s", origin, forwarder, exc)
            return False
        return True

    async def _pump(self, topic: str) -> None:
        subscription = await self._pubsub.subscribe(topic)
        async for message in subscription:
            origin = ID(message.from_id).to_base58()
            if origin == self.peer_id:
                continue
            # Pubsub delivers only what passed _check_gossip (the validator runs before delivery).
            item = (origin, json.loads(message.data)["body"])
            for listener in list(self._subscribers[topic]):
                try:
                    listener.send_nowait(item)
                except trio.WouldBlock:
                    self._opener.dropped["slow_consumer"] += 1
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    self._subscribers[topic].remove(listener)


def _concrete(addrs: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
    """What peers can dial: a wildcard listen address (0.0.0.0) becomes one address per interface."""
    return [concrete for addr in addrs for concrete in expand_wildcard_address(addr)]


def _peer_address(address: str) -> PeerInfo:
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(address))
    except ValueError as exc:
        raise ValueError(f"{address!r} is not a multiaddr ending in /p2p/<peer id>: {exc}") from None


def _peer(peer_id: str) -> ID:
    try:
        return ID.from_base58(peer_id)
    except ValueError:
        raise PeerUnavailable(f"{peer_id!r} is not a peer id") from None
