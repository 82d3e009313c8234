"""The peer table: what every other node hosts, how busy and how fast it is, and whom to forward to.

Pure bookkeeping, no network: the network service feeds it announcements,
round-trip times and heartbeat verdicts; the API asks it where a model runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from core.records import ModelInfo, ModelLoad, PeerInfo

DEFAULT_TTL_S = 15.0


@dataclass(frozen=True)
class PeerEntry:
    info: PeerInfo
    last_seen: float
    rtt_ms: float | None = None

    def load_of(self, model: str) -> float:
        """Requests per slot on this peer's copy of the model: 0 is idle, 1 is every slot busy."""
        load = self.info.load.get(model, ModelLoad())
        slots = next((m.parallel for m in self.info.models if m.name == model), 1)
        return (load.running + load.waiting) / max(1, slots)

    def model(self, name: str) -> ModelInfo | None:
        return next((m for m in self.info.models if m.name == name), None)


class PeerTable:
    def __init__(
        self, self_id: str, *, ttl: float = DEFAULT_TTL_S, clock: Callable[[], float] = time.monotonic
    ):
        self.self_id = self_id
        self.ttl = ttl
        self._clock = clock
        self._entries: dict[str, PeerEntry] = {}

    def update(self, info: PeerInfo) -> bool:
        """Take a peer's announcement; returns True when the peer is new to the table."""
        if info.peer_id == self.self_id:
            return False
        previous = self._entries.get(info.peer_id)
        if previous is not None and info.announced_at < previous.info.announced_at:
            return False  # an older announcement that arrived late
        rtt = previous.rtt_ms if previous else None
        self._entries[info.peer_id] = PeerEntry(info, self._clock(), rtt)
        return previous is None

    def record_rtt(self, peer_id: str, rtt_ms: float) -> None:
        entry = self._entries.get(peer_id)
        if entry is not None:
            smoothed = rtt_ms if entry.rtt_ms is None else 0.7 * entry.rtt_ms + 0.3 * rtt_ms
            self._entries[peer_id] = replace(entry, rtt_ms=smoothed)

    def remove(self, peer_id: str) -> bool:
        return self._entries.pop(peer_id, None) is not None

    def expire(self) -> list[str]:
        """Drop peers that stopped announcing; returns their ids."""
        cutoff = self._clock() - self.ttl
        gone = [pid for pid, entry in self._entries.items() if entry.last_seen < cutoff]
        for pid in gone:
            del self._entries[pid]
        return gone

    def peers(self) -> list[PeerEntry]:
        return sorted(self._entries.values(), key=lambda e: e.info.peer_id)

    def get(self, peer_id: str) -> PeerEntry | None:
        return self._entries.get(peer_id)

    def hosts_for(self, model: str) -> list[PeerEntry]:
        """Peers that host `model`, best first: least loaded, then fastest, then nearest."""
        hosts = [e for e in self._entries.values() if e.model(model) is not None]

        def rank(entry: PeerEntry) -> tuple[float, float, float]:
            speed = entry.model(model).tokens_per_second or 0.0  # type: ignore[union-attr]
            return (entry.load_of(model), -speed, entry.rtt_ms if entry.rtt_ms is not None else float("inf"))

        return sorted(hosts, key=rank)

    def models(self) -> dict[str, list[PeerEntry]]:
        """Every model in the table, with the peers that host it."""
        found: dict[str, list[PeerEntry]] = {}
        for entry in self.peers():
            for info in entry.info.models:
                found.setdefault(info.name, []).append(entry)
        return found
