"""Circuit Relay v2 and DCUtR hole punching, wrapped for the Transport (docs/libp2p.md, "NAT traversal").

py-libp2p 0.8.1 ships both but switches neither on: every host here runs the relay's STOP side (so it
can be reached through a relay) and DCUtR (so a relayed connection is upgraded to a direct one where
the NATs allow it); a host started with `serve` also runs the HOP side, within `RelayLimits`. The
swarm's own dial drops /p2p-circuit addresses, so circuits are dialed through `CircuitV2Transport`
here, and a reservation adds nothing to the host's addresses, so `circuit_addrs` lists them for the
node's announcements.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import multiaddr
import trio
from libp2p.abc import IHost, INetConn
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStoreError
from libp2p.relay.circuit_v2.config import RelayConfig, RelayRole
from libp2p.relay.circuit_v2.dcutr import DCUtRProtocol
from libp2p.relay.circuit_v2.protocol import PROTOCOL_ID as HOP_PROTOCOL
from libp2p.relay.circuit_v2.protocol import CircuitV2Protocol
from libp2p.relay.circuit_v2.resources import RelayLimits
from libp2p.relay.circuit_v2.transport import CircuitV2Transport
from libp2p.tools.anyio_service import background_trio_service

from .errors import describe

log = logging.getLogger("swarm.transport")

# What a relay lends strangers, at most (py-libp2p's defaults are 1 h, 1 GiB, 8 circuits, 4 reservations).
DEFAULT_RELAY_LIMITS = RelayLimits(duration=3600, data=256 << 20, max_circuit_conns=32, max_reservations=64)
MAX_RESERVATIONS = 2  # relays a node behind NAT holds a reservation on at once
PUNCH_AGAIN_S = 30.0  # how often peers reached only through a relay get new hole-punching tries
RESERVE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class PathInfo:
    """How this node reaches a connected peer now: "direct" (with the remote address) or "relayed"."""

    kind: str
    remote: str | None  # ip:port of a direct connection; the relay's peer id of a relayed one


def is_circuit(addr: multiaddr.Multiaddr) -> bool:
    return any(p.name == "p2p-circuit" for p in addr.protocols())


def connection_path(conn: INetConn) -> PathInfo:
    """Direct or relayed, read from what the connection's transport says of itself."""
    addrs = conn.get_transport_addresses()
    circuit = next((a for a in addrs if is_circuit(a)), None)
    if circuit is not None:
        relay = str(circuit).split("/p2p-circuit")[0].rsplit("/p2p/", 1)[-1]
        return PathInfo("relayed", relay)
    remote = conn.muxed_conn.secured_conn.get_remote_address()  # type: ignore[attr-defined]
    return PathInfo("direct", f"{remote[0]}:{remote[1]}" if remote else None)


class Relaying:
    """The relay protocol (STOP always, HOP when serving), the circuit dialer, reservations and DCUtR."""

    def __init__(self, host: IHost, swarm: Swarm, *, serve: bool, limits: RelayLimits) -> None:
        self._host, self._swarm = host, swarm
        self.serving = serve
        self.limits = limits
        self._protocol = CircuitV2Protocol(host, limits=limits, allow_hop=serve)
        # STOP only: a dial through a relay must not take a reservation there first (CLIENT would)
        self._circuits = CircuitV2Transport(
            host, self._protocol, RelayConfig(roles=RelayRole.STOP, limits=limits)
        )
        self._dcutr = DCUtRProtocol(host)
        self._nursery: trio.Nursery | None = None
        self.reservations: dict[str, list[str]] = {}  # relay peer id -> its addresses we reserved through
        self.reserved_at: float | None = None  # trio time of the first reservation

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with (
            background_trio_service(self._protocol),
            background_trio_service(self._dcutr),
            trio.open_nursery() as nursery,
        ):
            self._nursery = nursery
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()

    # ---- as a relay

    def served(self) -> tuple[int, int]:
        """(reservations held here, circuits open through here) when serving."""
        manager = self._protocol.resource_manager
        manager._clean_expired()
        return len(manager._reservations), len(self._protocol._active_relays)

    # ---- as a client

    def offers_relay(self, peer: ID) -> bool:
        """Whether identify said the peer serves the HOP protocol."""
        try:
            return bool(self._host.get_peerstore().supports_protocols(peer, [str(HOP_PROTOCOL)]))
        except PeerStoreError:
            return False

    async def reserve(self, relay: ID, relay_addrs: list[str]) -> bool:
        """Take (and keep refreshing) a reservation on `relay`; True once it is held."""
        assert self._nursery is not None, "Relaying is not running"
        with trio.move_on_after(RESERVE_TIMEOUT_S):
            try:
                stream = await self._host.new_stream(relay, [HOP_PROTOCOL])
                try:
                    held = await self._circuits.reserve(stream, relay, self._nursery)
                finally:
                    await stream.close()
            except Exception as exc:  # any failure of any layer: this relay is not used
                log.info("could not reserve a slot on relay %s: %s", relay, describe(exc))
                return False
            if held:
                self.reservations[relay.to_base58()] = relay_addrs
                self.reserved_at = self.reserved_at or trio.current_time()
                log.info("reachable through relay %s", relay)
            return held
        log.info("relay %s did not answer a reservation within %g s", relay, RESERVE_TIMEOUT_S)
        return False

    def held(self) -> list[str]:
        """The relays whose reservation for us is current (the library refreshes and expires them)."""
        current = self._circuits._reservations
        return [relay for relay in self.reservations if ID.from_base58(relay) in current]

    def circuit_addrs(self) -> list[str]:
        """Our addresses through every relay holding a reservation for us, up to /p2p-circuit."""
        return [f"{self.reservations[relay][0]}/p2p/{relay}/p2p-circuit" for relay in self.held()]

    async def dial(self, circuit: multiaddr.Multiaddr) -> None:
        """Connect through the relay `circuit` names; raises on failure."""
        await self._circuits.dial(circuit)

    async def punch_again(self) -> None:
        """DCUtR tries a relayed peer 3 times, then never again while connected: on a loaded machine or a
        NAT that was briefly busy that gives up for good. Every peer still reached only through a relay
        gets 3 more tries each time this runs."""
        for peer in list(self._swarm.connections):
            paths = [connection_path(c) for c in self._swarm.get_connections(peer) if not c.is_closed]
            if paths and all(p.kind == "relayed" for p in paths):
                self._dcutr._hole_punch_attempts.pop(peer, None)
                await self._dcutr.initiate_hole_punch(peer)
