"""Prometheus metrics of one node, in a registry of its own (several nodes may share a process)."""

from __future__ import annotations

from collections import Counter as CounterOf
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .transport import Transport, TransportCounters

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128)


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "swarm_requests",
            "Requests answered, by model, endpoint and HTTP status",
            ["model", "endpoint", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter("swarm_prompt_tokens", "Prompt tokens processed", ["model"], registry=r)
        self.completion_tokens = Counter("swarm_completion_tokens", "Tokens generated", ["model"], registry=r)
        self.latency = Histogram(
            "swarm_request_latency_seconds",
            "Time from admission to the last token",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.time_to_first_token = Histogram(
            "swarm_time_to_first_token_seconds",
            "Time from admission to the first token generated",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "swarm_errors", "Failed requests, by model and error type", ["model", "type"], registry=r
        )
        self.queue_waiting = Gauge(
            "swarm_queue_waiting", "Requests waiting for a model slot", ["model"], registry=r
        )
        self.running = Gauge("swarm_requests_running", "Requests being generated", ["model"], registry=r)
        self.engine_restarts = Counter(
            "swarm_engine_restarts", "Engine restarts after a crash", ["model"], registry=r
        )
        self.routed = Counter(
            "swarm_routed", "Requests to the model swarm, by the expert chosen", ["model"], registry=r
        )
        self.route_decision = Histogram(
            "swarm_route_decision_seconds",
            "Time to embed a question, score the experts and select within the budget",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=r,
        )
        self.round_phase = Histogram(
            "swarm_round_phase_seconds",
            "Time spent in each phase of a consensus or vote round",
            ["phase"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.client_disconnects = Counter(
            "swarm_client_disconnects", "Streams the client closed before the end", ["model"], registry=r
        )

    def watch_transport(self, counters: TransportCounters) -> None:
        """Export the network layer's counters, read at every scrape."""
        self.registry.register(_TransportCollector(counters))

    def watch_relaying(self, transport: Transport) -> None:
        """Reachability, the relays this node is reached through, and what it relays for others."""
        r = self.registry

        def served(i: int) -> float:
            return (transport.relay_served or (0, 0))[i]

        reached = Gauge("swarm_reachable", "1: peers' fresh identities reached it", registry=r)
        reached.set_function(lambda: float(transport.reachability.status == "public"))
        held = Gauge("swarm_relays_held", "Relays holding a reservation for this node", registry=r)
        held.set_function(lambda: len(transport.relays))
        slots = Gauge("swarm_relay_reservations", "Peers holding a reservation on this relay", registry=r)
        slots.set_function(lambda: served(0))
        circuits = Gauge("swarm_relay_circuits", "Circuits open through this relay", registry=r)
        circuits.set_function(lambda: served(1))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _TransportCollector(Collector):
    def __init__(self, counters: TransportCounters) -> None:
        self._counters = counters

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield _by_reason(
            "swarm_dropped_messages",
            "Peer messages dropped: stale, replayed, oversized, malformed, badly signed",
            self._counters.dropped,
        )
        yield _by_reason(
            "swarm_refused_requests",
            "Peers' requests refused before any work: by policy, quota, concurrency, open streams, size",
            self._counters.refused,
        )
        served = CounterMetricFamily(
            "swarm_peer_requests", "Requests from peers, by outcome", labels=["outcome"]
        )
        served.add_metric(["served"], self._counters.requests_served)
        served.add_metric(["failed"], self._counters.requests_failed)
        yield served


def _by_reason(name: str, documentation: str, counts: CounterOf[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=["reason"])
    for reason, count in sorted(counts.items()):
        family.add_metric([reason], count)
    return family
