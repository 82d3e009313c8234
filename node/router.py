"""The node's side of routing: the cluster table it holds on disk, the embedder, and the experts it can reach.

The table lives in `<data dir>/routing/table.json`, with the signed statement
of the node that installed it, and is replaced only by a table that
supersedes it (newer, or the same age with a higher version), so every node
that has seen the same tables holds the same one whatever order they came in.
A table that can't be written (a full disk) is not used, and the node says
why in `store_error`. The embedder loads in a worker thread the first time a
table needs it, never on the event loop.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trio

from core.records import GENERAL, Domain, ModelLoad
from core.statements import Statement, from_wire
from routing import domains
from routing.clusters import normalise
from routing.embeddings import Embedder, MiniLMEmbedder
from routing.router import Expert, RouteDecision, route
from routing.selection import Budget
from routing.table import STATEMENT_KIND, ClusterTable

from .hosting import HostedModel
from .peers import PeerTable

log = logging.getLogger("swarm.router")

TABLE_FILE = Path("routing") / "table.json"


class TableNotStored(Exception):
    """A table that could not be written to disk, and so is not used."""


class Router:
    def __init__(self, data_dir: Path, embedder: Callable[[], Embedder] = MiniLMEmbedder) -> None:
        self.path = data_dir / TABLE_FILE
        self._make_embedder = embedder
        self._embedder: Embedder | None = None
        self._limiter = trio.CapacityLimiter(1)  # the embedder and its cache are not thread-safe
        self.statement: Statement | None = None  # who installed the table; None: unsigned (an older file)
        self.store_error: str | None = None  # why the last table taken up could not be written
        # time.monotonic() of the last table taken up, or that could not be stored: tables from the
        # network wait a while after either (node.network.TABLE_HOLD_S), so a full disk is not retried
        # on every announcement.
        self.tried_at: float | None = None
        self.table = self._load()
        self._domains: dict[Domain, np.ndarray] | None = None  # each domain's centroid, once embedded

    def _load(self) -> ClusterTable | None:
        try:
            text = self.path.read_text()
            table = ClusterTable.from_json(text)
            signed = json.loads(text).get("statement")
            self.statement = None if signed is None else from_wire(signed, kind=STATEMENT_KIND)
            return table
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:  # BadStatement is a ValueError
            # Keep the bad file for inspection; a peer's table will replace it.
            self.path.replace(self.path.with_suffix(".rejected"))
            log.warning("ignored the routing table in %s (%s); moved it aside", self.path, exc)
            return None

    def adopt(self, table: ClusterTable, statement: Statement | None = None) -> bool:
        """Take `table` if it supersedes the one held; written to disk, with the statement of the node
        that installed it, before it is used. Raises TableNotStored if it can't be written."""
        if not table.supersedes(self.table):
            return False
        stored = {**json.loads(table.to_json()), "statement": statement and statement.to_wire()}
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(tmp, "w") as f:
                f.write(json.dumps(stored))
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):  # what part of it fitted, so the disk has that room again
                tmp.unlink(missing_ok=True)
            self.store_error = f"could not store routing table {table.version} in {self.path}: {exc}"
            self.tried_at = time.monotonic()
            log.error("%s; keeping the table held", self.store_error)
            raise TableNotStored(self.store_error) from exc
        self.table, self.statement, self.store_error = table, statement, None
        self.tried_at = time.monotonic()
        models = ", ".join(table.models)
        log.info("routing table %s: %d clusters, models %s", table.version, table.num_clusters, models)
        return True

    async def warm(self) -> None:
        """Load the embedder ahead of the first routed question (seconds, in a worker thread)."""
        if self.table is not None:
            await self.embed("")

    async def embed(self, text: str) -> np.ndarray | None:
        """The question's embedding in the table's space; None without a table or in another space."""
        table = self.table
        if table is None:
            return None
        async with self._limiter:
            if self._embedder is None:
                self._embedder = await trio.to_thread.run_sync(self._make_embedder)
            if self._embedder.name != table.embedder:
                log.warning(
                    "routing table %s was built with %s, this node embeds with %s: using overall accuracy",
                    table.version,
                    table.embedder,
                    self._embedder.name,
                )
                return None
            embedder = self._embedder
            return (await trio.to_thread.run_sync(embedder.embed, [text]))[0]

    async def domain(self, question: str) -> Domain:
        """The question's domain (`routing.domains`), whose say decides who may answer it; GENERAL if the
        embedder can't be loaded. The domains' centroids are embedded on the first call (seconds)."""
        try:
            async with self._limiter:
                if self._embedder is None:
                    self._embedder = await trio.to_thread.run_sync(self._make_embedder)
                embedder = self._embedder
                if self._domains is None:
                    self._domains = await trio.to_thread.run_sync(
                        lambda: domains.centroids(domains.samples(), embedder.embed)
                    )
                query = await trio.to_thread.run_sync(embedder.embed, [question])
        except (ImportError, OSError, RuntimeError) as exc:
            log.warning("can't tell the question's domain (%s): taking it as %s", exc, GENERAL)
            return GENERAL
        return domains.nearest(normalise(query)[0], self._domains)

    async def decide(
        self, question: str, experts: list[Expert], budget: Budget, *, prompt_tokens: int, max_tokens: int
    ) -> RouteDecision:
        query = await self.embed(question)
        return route(query, self.table, experts, budget, prompt_tokens=prompt_tokens, max_tokens=max_tokens)


def experts(
    local: dict[str, HostedModel],
    peers: PeerTable | None,
    admit: Callable[[str | None], bool] = lambda peer_id: True,
) -> list[Expert]:
    """One expert per model in reach, described by the host a request for it would go to.

    A model hosted here is served here; otherwise by the best peer in the
    peer table's order, the same one forwarding tries first. Only hosts that
    `admit` (this node is None) count: those with a say, say.
    """
    found = {
        name: Expert(
            model=name,
            peer_id=None,
            tokens_per_second=model.info.tokens_per_second,
            queued=model.running + model.queue.waiting,
            slots=model.info.parallel,
            rtt_s=0.0,
            price_per_token=model.price_per_token,
        )
        for name, model in local.items()
        if admit(None)
    }
    for name in peers.models() if peers is not None else ():
        hosts = [h for h in peers.hosts_for(name) if admit(h.info.peer_id)]
        if name in found or not hosts:
            continue
        host = hosts[0]
        info = host.model(name)
        assert info is not None
        load = host.info.load.get(name, ModelLoad())
        found[name] = Expert(
            model=name,
            peer_id=host.info.peer_id,
            tokens_per_second=info.tokens_per_second,
            queued=load.running + load.waiting,
            slots=info.parallel,
            rtt_s=(host.rtt_ms or 0.0) / 1000,
            price_per_token=info.price_per_token,
        )
    return list(found.values())
