"""The Transport: one hardened libp2p host, whose parts it wires together and runs.

The host has Noise as its only security and yamux as its only muxer (traps 1 and 3 of
docs/libp2p.md), and two connections per peer, so a punched direct connection and the relayed one it
replaces can be held at once (trap 2, and "NAT traversal").
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import ExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import multiaddr
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.crypto.x25519 import create_new_key_pair as create_noise_key_pair
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.network.config import ConnectionConfig, RetryConfig
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service

from core.envelope import Opener
from core.identity import Identity

from .addresses import AddressBook, dialable, peer_address
from .connections import CONNECT_TIMEOUT_S, Connections, ConnectionWatcher
from .errors import TransportStartError, quiet_libp2p_logs
from .heartbeat import (
    DEFAULT_HEARTBEAT_INTERVAL_S,
    DEFAULT_HEARTBEAT_MISSES,
    DEFAULT_HEARTBEAT_TIMEOUT_S,
    Heartbeat,
    PeerEvent,
)
from .port_lock import default_lock_dir, port_lock
from .pubsub import Gossip, Topics
from .reachability import DIALBACK_DIAL_TIMEOUT_S, DIALBACK_PROTOCOL, DialbackServer, Verdict, check
from .relay import DEFAULT_RELAY_LIMITS, MAX_RESERVATIONS, PUNCH_AGAIN_S, PathInfo, Relaying, connection_path
from .requests import Handler, Requests, TransportCounters

log = logging.getLogger("swarm.transport")


REACHABILITY_RECHECK_S = 300.0  # how often a node asks peers again whether strangers reach it
REACHABILITY_RETRY_S = 10.0  # sooner while it has no answer, or no relay holds a slot for it


def libp2p_key_pair(identity: Identity) -> KeyPair:
    """The libp2p key pair of `identity`: the same Ed25519 key, so libp2p's peer id is ours."""
    return create_new_key_pair(identity.seed())


def hardened_host(key_pair: KeyPair, **options: Any) -> Any:
    """A host with Noise as its only security and yamux as its only muxer (traps 1 and 3). Two
    connections per peer, so a punched direct connection and the relayed one it replaces can be
    held at once; the dials that would then wait 250 ms (trap 2) go address by address instead."""
    noise = NoiseTransport(key_pair, noise_privkey=create_noise_key_pair().private_key)
    return new_host(
        key_pair=key_pair,
        sec_opt={NOISE_PROTOCOL: noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL): Yamux},
        connection_config=ConnectionConfig(max_connections_per_peer=2),
        **options,
    )


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
        relay: bool = False,
        relay_limits: RelayLimits = DEFAULT_RELAY_LIMITS,
        public_addrs: Iterable[str] = (),
    ) -> None:
        quiet_libp2p_logs()
        self.identity = identity
        self.peer_id = identity.peer_id
        self._listen = multiaddr.Multiaddr(f"/{'ip6' if ':' in host else 'ip4'}/{host}/tcp/{port}")
        self._port = port
        self._bootstrap = list(bootstrap)
        for address in self._bootstrap:
            try:
                peer_address(address)
            except ValueError as exc:
                raise TransportStartError(f"bootstrap address {exc}") from None
        self._lock_dir = lock_dir or default_lock_dir()
        self._opener = Opener()
        self.counters = TransportCounters(dropped=self._opener.dropped)

        try:
            self._public_addrs = [multiaddr.Multiaddr(a) for a in public_addrs]
        except ValueError as exc:
            raise TransportStartError(f"public address: {exc}") from None
        self._host = hardened_host(
            libp2p_key_pair(identity), enable_mDNS=enable_mdns, addrs_factory=self._advertised
        )
        network = self._host.get_network()
        assert isinstance(network, Swarm)
        self._swarm = network
        self._relaying = Relaying(self._host, network, serve=relay, limits=relay_limits)
        self._dialback = DialbackServer(network, hardened_host)
        self.reachability = Verdict("unknown", (), (), ())
        # Every caller bounds its own dial and retries on its own schedule: libp2p's retries
        # would only spend the caller's deadline on a peer that just refused.
        network.retry_config = RetryConfig(max_retries=0)
        network.register_notifee(ConnectionWatcher(self._on_connected))
        self._topics = Topics(identity, self._host, self._opener)
        self._dht = KadDHT(self._host, DHTMode.SERVER)

        self._book = AddressBook(
            self.peer_id,
            self._host.get_peerstore(),
            kept=(peer_address(a).peer_id.to_base58() for a in self._bootstrap),
        )
        self._connections = Connections(self._host, network, self._dht, self._book, self._relaying)
        self._heartbeat = Heartbeat(
            self._host,
            self._book,
            self._connections.dial,
            interval=heartbeat_interval,
            timeout=heartbeat_timeout,
            misses=heartbeat_misses,
        )
        self._requests = Requests(identity, self._host, self._opener, self.counters, self._connections.dial)
        self._requests.handle(DIALBACK_PROTOCOL, self._dialback.handle)
        self._nursery: trio.Nursery | None = None
        self._started_at: float | None = None

    # ---- life cycle

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen, join the bootstrap peers and keep the heartbeat going until cancelled."""
        with ExitStack() as locks:
            if self._port:  # locked before binding, so a second node never takes connections meant for us
                locks.enter_context(port_lock(self._lock_dir, self._port))
            async with self._host.run([self._listen]):
                bound = self._host.get_transport_addrs()
                if not bound:
                    raise TransportStartError(
                        f"can't listen on {self._listen}: the address is taken or not on this machine"
                    )
                if not self._port:
                    locks.enter_context(port_lock(self._lock_dir, int(bound[0].value_for_protocol("tcp"))))
                # The heartbeat owns reconnecting (negative cache cleared, down peers backed off);
                # libp2p's auto-connector would also dial every peer-store entry every 10 s.
                await self._swarm.auto_connector.stop()
                async with (
                    self._topics.running(),
                    background_trio_service(self._dht),
                    self._relaying.running(),
                    trio.open_nursery() as nursery,
                ):
                    await self._topics.wait_until_ready()
                    self._nursery = nursery
                    nursery.start_soon(self._heartbeat.run)
                    self._connections.join(nursery, self._bootstrap)
                    nursery.start_soon(self._keep_reachable)
                    nursery.start_soon(self._punch_again)
                    self._started_at = trio.current_time()
                    log.info("p2p listening on %s", ", ".join(self.listen_addrs))
                    task_status.started()
                    await trio.sleep_forever()

    @property
    def listen_addrs(self) -> list[str]:
        """Where peers can reach this node, each ending in /p2p/<peer id> (empty until it runs): the
        addresses it listens on, those the operator says it has, then its circuits through relays."""
        circuits = [f"{a}/p2p/{self.peer_id}" for a in self._relaying.circuit_addrs()]
        return [*(str(a) for a in self._host.get_addrs()), *circuits]

    def _advertised(self, addrs: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
        """What identify tells peers (the host drops any /p2p part here, so circuits can't be among them)."""
        return [*dialable(addrs), *self._public_addrs]

    # ---- reachability and relays

    @property
    def relays(self) -> list[str]:
        """The relays holding a reservation for this node now."""
        return self._relaying.held()

    @property
    def relay_served(self) -> tuple[int, int] | None:
        """(reservations, circuits) this node holds for others as a relay; None if it is not one."""
        return self._relaying.served() if self._relaying.serving else None

    @property
    def reachable_through_relay_at(self) -> float | None:
        """Seconds from the transport's start to its first reservation on a relay (None: none yet)."""
        reserved = self._relaying.reserved_at
        return None if reserved is None or self._started_at is None else reserved - self._started_at

    def path(self, peer_id: str) -> PathInfo | None:
        """How this node is connected to a peer now; a direct connection wins over a relayed one."""
        paths = [
            connection_path(c)
            for c in self._swarm.get_connections(ID.from_base58(peer_id))
            if not c.is_closed
        ]
        return min(paths, key=lambda p: p.kind != "direct", default=None)

    async def check_reachability(self) -> Verdict:
        """Ask connected peers to dial our direct addresses back from fresh identities."""
        own = [str(a) for a in [*dialable(self._host.get_transport_addrs()), *self._public_addrs]]
        peers = sorted(
            (p.to_base58() for p in self._host.get_connected_peers()),
            key=lambda p: p not in self._book.kept,  # bootstrap peers first
        )

        async def ask(peer: str, body: dict[str, Any]) -> dict[str, Any]:
            return await self.request(peer, DIALBACK_PROTOCOL, body, timeout=DIALBACK_DIAL_TIMEOUT_S * 4 + 5)

        self.reachability = await check(ask, peers, own)
        return self.reachability

    async def _keep_reachable(self) -> None:
        """Once joined: check reachability; behind NAT, hold reservations on relays among our peers."""
        await self._connections.joined()
        said = None
        while True:
            verdict = await self.check_reachability()
            if verdict.status != said:
                said = verdict.status
                log.info(
                    "reachability: %s (confirmed by %d, denied by %d)",
                    verdict.status,
                    len(verdict.confirmed_by),
                    len(verdict.denied_by),
                )
            if verdict.status == "private":
                await self.take_relays()
            done = verdict.status != "unknown" and (verdict.status == "public" or self.relays)
            await trio.sleep(REACHABILITY_RECHECK_S if done else REACHABILITY_RETRY_S)

    async def _punch_again(self) -> None:
        while True:
            await trio.sleep(PUNCH_AGAIN_S)
            await self._relaying.punch_again()

    async def take_relays(self) -> None:
        """Take reservations on relays among the connected peers, up to MAX_RESERVATIONS in all."""
        held = set(self.relays)
        for peer in self._host.get_connected_peers():
            if len(held) >= MAX_RESERVATIONS:
                return
            peer_id = peer.to_base58()
            if peer_id in held or not self._relaying.offers_relay(peer):
                continue
            path = self.path(peer_id)
            if path is None or path.kind != "direct" or path.remote is None:
                continue  # a relay is reached directly, at the address our connection to it has
            ip, port = path.remote.rsplit(":", 1)
            address = f"/{'ip6' if ':' in ip else 'ip4'}/{ip.strip('[]')}/tcp/{port}"
            if await self._relaying.reserve(peer, [address]):
                held.add(peer_id)

    def _running(self) -> trio.Nursery:
        if self._nursery is None:
            raise RuntimeError("the transport is not running: start it with nursery.start(transport.run)")
        return self._nursery

    def _on_connected(self, peer: ID) -> None:
        if self._nursery is None:
            return
        self._heartbeat.mark_alive(peer.to_base58())
        self._nursery.start_soon(self._connections.learn, peer)

    # ---- peers and their addresses

    async def connect(self, address: str, *, timeout: float = CONNECT_TIMEOUT_S) -> str:
        """Dial a multiaddr ending in /p2p/<peer id>; returns that peer id. Raises PeerUnavailable."""
        return await self._connections.connect(address, timeout=timeout)

    def add_addresses(self, peer_id: str, addrs: Iterable[str]) -> None:
        """Addresses a peer is known by (from its announcement, say); bad or foreign ones are skipped."""
        self._book.add(peer_id, addrs)

    def addresses(self, peer_id: str) -> list[str]:
        """The address book's entries for a peer, newest last."""
        return self._book.addresses(peer_id)

    def peer_states(self) -> dict[str, str]:
        """Every peer the heartbeat has an opinion on: "up" or "down"."""
        return self._heartbeat.peer_states()

    def rtts(self) -> dict[str, float]:
        """The heartbeat's last round trip to each peer, in milliseconds, over the path it takes now."""
        return self._heartbeat.rtts()

    def peer_events(self) -> trio.MemoryReceiveChannel[PeerEvent]:
        """A channel of every later change of a peer's state; close it to stop listening."""
        return self._heartbeat.peer_events()

    # ---- request / response

    def handle(self, protocol: str, handler: Handler) -> None:
        """Serve `protocol`: `handler(sender_peer_id, body)` yields one or more replies."""
        self._requests.handle(protocol, handler)

    async def request(
        self, peer_id: str, protocol: str, body: dict[str, Any], *, timeout: float
    ) -> dict[str, Any]:
        """The first reply. `timeout` bounds everything: dial, open, write and read."""
        self._running()
        return await self._requests.request(peer_id, protocol, body, timeout=timeout)

    @asynccontextmanager
    async def stream(
        self, peer_id: str, protocol: str, body: dict[str, Any], *, timeout: float
    ) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Every reply until the handler finishes. `timeout` is one deadline for the whole exchange,
        the caller's work inside the block included: past it the block is cancelled and RequestTimeout raised.
        """
        self._running()
        async with self._requests.stream(peer_id, protocol, body, timeout=timeout) as replies:
            yield replies

    # ---- pubsub

    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        """Gossip `body` on `topic`. Paced to one message per PUBLISH_MIN_INTERVAL_S per topic."""
        self._running()
        await self._topics.publish(topic, body)

    def subscribe(self, topic: str) -> trio.MemoryReceiveChannel[Gossip]:
        """(sender peer id, body) of every checked message other peers publish on `topic`; close to stop."""
        return self._topics.subscribe(topic, self._running())
