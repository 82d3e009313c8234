"""Our own heartbeat (trap 6 of docs/libp2p.md): every peer we know is pinged each interval, is down
after some beats missed in a row, and is then probed less and less often until it answers again. At
most PROBES_PER_BEAT peers are probed a beat, the most overdue first, and a peer silent for
FORGET_AFTER_S is forgotten: a flood of announced keys costs a bounded number of dials.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import trio
from libp2p.abc import IHost
from libp2p.host.ping import ID as PING_PROTOCOL
from libp2p.host.ping import perform_ping_roundtrip
from libp2p.peer.id import ID

from .addresses import AddressBook
from .errors import describe
from .listeners import LISTENER_BUFFER, Listeners

log = logging.getLogger("swarm.transport")

DEFAULT_HEARTBEAT_INTERVAL_S = 2.0
DEFAULT_HEARTBEAT_TIMEOUT_S = 1.0
DEFAULT_HEARTBEAT_MISSES = 3
DOWN_PROBE_MAX_INTERVAL_S = 30.0  # a down peer is probed less and less often, down to this
PROBES_PER_BEAT = 64
FORGET_AFTER_S = 600.0  # a peer that has not answered for this long leaves the book (bootstrap peers stay)


@dataclass(frozen=True, slots=True)
class PeerEvent:
    peer_id: str
    state: Literal["up", "down"]


@dataclass
class _Health:
    state: Literal["up", "down"] | None = None  # None until the first probe or connection says
    misses: int = 0
    next_probe: float = 0.0
    heard: float = 0.0  # when it last answered, or was first heard of
    rtt_ms: float | None = None  # its last ping's round trip, over whichever path the connection takes


class Heartbeat:
    """Which peers are up: the peers of the address book and those connected to us, probed by ping."""

    def __init__(
        self,
        host: IHost,
        book: AddressBook,
        dial: Callable[[ID], Awaitable[None]],
        *,
        interval: float,
        timeout: float,
        misses: int,
    ) -> None:
        self._host, self._book, self._dial = host, book, dial
        self.interval, self.timeout, self.misses = interval, timeout, misses
        self._health: dict[str, _Health] = {}
        self._listeners = Listeners[PeerEvent]()

    def rtts(self) -> dict[str, float]:
        """Each peer's last measured round trip in milliseconds (relayed or direct: as it is reached now)."""
        return {peer: health.rtt_ms for peer, health in self._health.items() if health.rtt_ms is not None}

    def peer_states(self) -> dict[str, str]:
        return {peer: health.state for peer, health in self._health.items() if health.state is not None}

    def peer_events(self) -> trio.MemoryReceiveChannel[PeerEvent]:
        return self._listeners.open()

    async def run(self) -> None:
        peerstore = self._host.get_peerstore()
        while True:
            tick = trio.current_time()
            for peer in peerstore.peers_with_addrs():
                self._book.absorb(peer)
            self._prune(tick)
            due = sorted((h.next_probe, p) for p, h in self._health.items() if h.next_probe <= tick)
            async with trio.open_nursery() as probes:
                for _, peer_id in due[:PROBES_PER_BEAT]:
                    probes.start_soon(self._probe, peer_id)
            await trio.sleep_until(tick + self.interval)

    def _prune(self, now: float) -> None:
        """Health for the peers of the book and those connected, no others; the long silent forgotten."""
        connected = {peer.to_base58() for peer in self._host.get_connected_peers()}
        for peer_id, health in list(self._health.items()):
            if peer_id not in connected and now - health.heard > FORGET_AFTER_S:
                self._book.forget(peer_id)
        known = set(self._book.peers()) | connected
        self._health = {p: h for p, h in self._health.items() if p in known}
        for peer_id in known:
            self._health.setdefault(peer_id, _Health(heard=now))

    async def _probe(self, peer_id: str) -> None:
        peer = ID.from_base58(peer_id)
        with trio.move_on_after(self.timeout):
            try:
                await self._dial(peer)
                stream = await self._host.new_stream(peer, [PING_PROTOCOL])
                try:
                    started = trio.current_time()
                    await perform_ping_roundtrip(stream)
                    rtt_ms = (trio.current_time() - started) * 1000
                finally:
                    with trio.CancelScope(shield=True):
                        await stream.reset()
            except Exception as exc:  # any failure of any layer is a missed beat
                log.debug("heartbeat to %s failed: %s", peer_id, describe(exc))
            else:
                self.mark_alive(peer_id)
                self._health[peer_id].rtt_ms = rtt_ms
                return
        self._mark_missed(peer_id)

    def mark_alive(self, peer_id: str) -> None:
        health = self._health.setdefault(peer_id, _Health())
        health.misses, health.next_probe, health.heard = 0, 0.0, trio.current_time()
        self._book.answered(peer_id)
        if health.state != "up":
            health.state = "up"
            self._emit(PeerEvent(peer_id, "up"))

    def _mark_missed(self, peer_id: str) -> None:
        health = self._health[peer_id]
        health.misses += 1
        beyond = health.misses - self.misses
        if beyond < 0:
            return
        backoff = min(self.interval * 2**beyond, DOWN_PROBE_MAX_INTERVAL_S)
        health.next_probe = trio.current_time() + backoff
        if health.state != "down":
            was_up = health.state == "up"
            health.state = "down"
            if was_up:
                log.info("peer %s is down: %d heartbeats missed", peer_id, health.misses)
                self._emit(PeerEvent(peer_id, "down"))

    def _emit(self, event: PeerEvent) -> None:
        if behind := self._listeners.send(event):
            log.warning(
                "%d peer event listener(s) %d events behind: dropped %s", behind, LISTENER_BUFFER, event
            )
