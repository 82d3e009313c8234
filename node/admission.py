"""Who may use this node's models over libp2p, and how much of them: the operator's policy and the bounds
every peer's work is held to (README.md, "Security").

A peer is served under `serve_peers`: "say" (the default) serves the peers with a say in the ledger, which
is every peer while the network is in its bootstrap and every peer of a node keeping no ledger; "allow-list"
serves only the peer ids the operator listed; "any" serves every peer. Whoever is served is held to a quota
(requests and tokens in any minute) and to a number of requests running or queued here at once; the
excess is refused at once, saying which bound it hit, and counted in swarm_refused_requests_total{reason}.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from .config import NodeConfig
from .hosting import QueueFull

WINDOW_S = 60.0  # the quota's minute


@dataclass(frozen=True)
class ServePolicy:
    """The operator's policy, as node/config.py checked it."""

    serve_peers: str = "say"  # one of config.SERVE_POLICIES
    allow: frozenset[str] = field(default_factory=frozenset)  # the peer ids "allow-list" serves
    requests_per_minute: int = 60  # per peer
    tokens_per_minute: int = 20_000  # per peer, counted as the most each request may generate
    concurrent: int = 4  # per peer: its requests running or queued here at once

    @classmethod
    def of(cls, config: NodeConfig) -> ServePolicy:
        return cls(
            config.serve_peers,
            config.served_peers(),
            config.peer_requests_per_minute,
            config.peer_tokens_per_minute,
            config.peer_concurrency,
        )


class Refused(QueueFull):
    """A peer's request refused before any work was done for it; `reason` labels the metric."""

    def __init__(self, reason: str, message: str, retry_after: int) -> None:
        Exception.__init__(self, message)
        self.reason, self.retry_after = reason, retry_after


class Admission:
    """Admits each peer's work under the policy: `speaks(peer)` says whether a peer has a say (None: no
    ledger, so every peer has one); `refused` counts the refusals by reason."""

    def __init__(
        self,
        policy: ServePolicy,
        speaks: Callable[[str], bool] | None,
        refused: Counter[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy, self._speaks, self.refused, self._clock = policy, speaks, refused, clock
        self._running: Counter[str] = Counter()
        self._spent: dict[str, deque[tuple[float, int]]] = {}  # peer -> (when, tokens) in the last minute

    def refuse(self, reason: str, message: str, retry_after: int = int(WINDOW_S)) -> Refused:
        """The refusal, counted."""
        self.refused[reason] += 1
        return Refused(reason, message, retry_after)

    def _served(self, peer: str) -> bool:
        policy = self.policy.serve_peers
        if policy == "any":
            return True
        if policy == "allow-list":
            return peer in self.policy.allow
        return self._speaks is None or self._speaks(peer)

    def _charge(self, peer: str, tokens: int) -> None:
        now = self._clock()
        spent = self._spent.setdefault(peer, deque())
        while spent and spent[0][0] <= now - WINDOW_S:
            spent.popleft()
        requests, used = len(spent), sum(t for _, t in spent)
        retry = int(WINDOW_S - (now - spent[0][0])) + 1 if spent else 1
        if requests >= self.policy.requests_per_minute:
            raise self.refuse(
                "quota", f"peer {peer} asked {requests} requests in the last minute, the most served", retry
            )
        if used + tokens > self.policy.tokens_per_minute:
            raise self.refuse(
                "quota",
                f"peer {peer} would use {used + tokens} tokens in a minute, past its quota of "
                f"{self.policy.tokens_per_minute}",
                retry,
            )
        spent.append((now, tokens))
        for idle in [p for p, s in self._spent.items() if not s or s[-1][0] <= now - WINDOW_S]:
            del self._spent[idle]  # a peer with nothing in the window holds no memory here

    @contextmanager
    def admit(self, peer: str, tokens: int) -> Iterator[None]:
        """Serve one request of `peer` that may generate `tokens`, or raise Refused saying why not."""
        if not self._served(peer):
            raise self.refuse(
                "policy",
                f"this node serves peers under --serve-peers {self.policy.serve_peers}, and peer {peer} "
                "is not one of them",
            )
        if self._running[peer] >= self.policy.concurrent:
            raise self.refuse(
                "concurrency",
                f"peer {peer} has {self._running[peer]} requests running or queued here, the most it may",
                1,
            )
        self._charge(peer, tokens)
        self._running[peer] += 1
        try:
            yield
        finally:
            self._running[peer] -= 1
            if not self._running[peer]:
                del self._running[peer]
