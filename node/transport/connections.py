"""Connections to peers: dialing with the negative dial cache cleared first (trap 4 of docs/libp2p.md),
direct addresses first and then circuits through relays, what identify tells us kept and given to the
DHT, and joining the network through bootstrap peers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import multiaddr
import trio
from libp2p.abc import IHost, INetConn, INetStream, INetwork, INotifee
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.kad_dht.kad_dht import KadDHT
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo
from libp2p.peer.peerstore import PeerStoreError

from .addresses import AddressBook, peer_address
from .errors import PeerUnavailable, describe
from .relay import Relaying, is_circuit

log = logging.getLogger("swarm.transport")

CONNECT_TIMEOUT_S = 10.0
BOOTSTRAP_RETRY_MAX_S = 30.0
IDENTIFY_WAIT_S = 5.0
# A peer with circuit addresses is probably behind NAT, where a direct dial is dropped unanswered:
# its direct addresses get this long before its circuits are tried, within the caller's one deadline.
DIRECT_FIRST_S = 3.0
PEERSTORE_TTL_S = 600


class ConnectionWatcher(INotifee):
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


class Connections:
    def __init__(self, host: IHost, swarm: Swarm, dht: KadDHT, book: AddressBook, relaying: Relaying) -> None:
        self._host, self._swarm, self._dht, self._book = host, swarm, dht, book
        self._relaying = relaying
        self._joined = trio.Event()  # set once a bootstrap peer (if any) has answered

    async def joined(self) -> None:
        """Wait until a bootstrap peer has answered (at once for a node without any)."""
        await self._joined.wait()

    async def connect(self, address: str, *, timeout: float) -> str:
        info = peer_address(address)
        peer_id = info.peer_id.to_base58()
        self._book.remember(peer_id, info.addrs)
        with trio.move_on_after(timeout):
            await self.dial(info.peer_id)
            return peer_id
        raise PeerUnavailable(f"{address} did not complete a connection within {timeout:g} s")

    async def dial(self, peer: ID) -> None:
        """Connect unless connected; the caller bounds the time. Raises PeerUnavailable."""
        if self._is_connected(peer):
            return
        addrs = self._book.multiaddrs(peer.to_base58())
        if not addrs:
            await self._joined.wait()  # the DHT knows nothing before a bootstrap peer answers
            found = await self._dht.find_peer(peer)
            if found is not None:
                self._book.remember(peer.to_base58(), found.addrs)
                addrs = self._book.multiaddrs(peer.to_base58())
        if not addrs:
            raise PeerUnavailable(f"no known address for peer {peer} (not in the address book nor the DHT)")
        self._swarm.unblock_peer(peer)  # a restarted peer is dialed at once (trap 4)
        # DCUtR and the DHT read a peer's addresses from the peer store
        self._host.get_peerstore().add_addrs(peer, addrs, PEERSTORE_TTL_S)
        circuits = [a.encapsulate(multiaddr.Multiaddr(f"/p2p/{peer}")) for a in addrs if is_circuit(a)]
        failures = []
        with trio.move_on_after(DIRECT_FIRST_S if circuits else float("inf")) as direct_first:
            for addr in (a for a in addrs if not is_circuit(a)):
                try:  # one address at a time: the swarm's own dial waits 250 ms per address (trap 2)
                    await self._swarm.dial_addr(addr, peer)
                    return
                except Exception as exc:  # libp2p dial errors come as groups and wrappers of many kinds
                    failures.append(f"{addr}: {describe(exc)}")
        if direct_first.cancelled_caught:
            failures.append(f"no direct address answered within {DIRECT_FIRST_S:g} s")
        for circuit in circuits:
            try:
                await self._relaying.dial(circuit)
                return
            except Exception as exc:
                failures.append(f"{circuit}: {describe(exc)}")
        raise PeerUnavailable(f"can't connect to {peer}: {'; '.join(failures)}")

    def _is_connected(self, peer: ID) -> bool:
        return any(not conn.is_closed for conn in self._swarm.get_connections(peer))

    async def learn(self, peer: ID) -> None:
        """Once identify has told the peer's listen addresses: keep them, and give the peer to the DHT."""
        with trio.move_on_after(IDENTIFY_WAIT_S):
            # 0.8.1 has no event for a finished identify: its protocol list showing up is the sign.
            while not self._identified(peer):
                await trio.sleep(0.02)
        self._book.absorb(peer)
        addrs = self._book.multiaddrs(peer.to_base58())
        if addrs:
            await self._dht.routing_table.add_peer(PeerInfo(peer, addrs))

    def _identified(self, peer: ID) -> bool:
        try:
            return bool(self._host.get_peerstore().supports_protocols(peer, [str(PING_PROTOCOL)]))
        except PeerStoreError:
            return False

    def join(self, nursery: trio.Nursery, bootstrap: list[str]) -> None:
        """Join the network through `bootstrap`, in the background; with none, this node starts one."""
        for address in bootstrap:
            nursery.start_soon(self._join, address)
        if not bootstrap:
            self._joined.set()

    async def _join(self, address: str) -> None:
        """Connect to one bootstrap peer, retrying with backoff, then learn the network through the DHT."""
        delay = 0.5
        while True:
            try:
                peer_id = await self.connect(address, timeout=CONNECT_TIMEOUT_S)
                break
            except PeerUnavailable as exc:
                log.warning("bootstrap peer %s failed: %s; retrying in %.1f s", address, exc, delay)
            await trio.sleep(delay)
            delay = min(delay * 2, BOOTSTRAP_RETRY_MAX_S)
        log.info("joined the swarm through %s", address)
        with trio.move_on_after(CONNECT_TIMEOUT_S):
            await self.learn(ID.from_base58(peer_id))  # in the routing table before the lookup below
            await self._dht.refresh_routing_table()
        self._joined.set()
