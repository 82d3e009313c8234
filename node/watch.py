"""What a person watching this node sees, kept here in bounded memory and told on the event bus.

- Rounds: every phase of every round this node runs as gateway (RoundService's
  observer), as a small view of what that phase settled; a finished round
  carries its full provenance (the `swarm` report of the chat completion).
  The last `rounds_kept` rounds are kept for the asking.
- This node's models: queue depth, tokens/s and time to first token, sampled
  every `sample_interval_s` into a bounded series each.
- Reputation: the ledger's table, sampled into a bounded series whenever the
  ledger's head moves (looked at every second), and the ledger checked whole
  with `consensus.verify` in a worker thread, one check at a time, at most
  every `verify_every_s` and only when there is something new to check.
- The network: peers' own peer tables, asked of their announced HTTP API
  (without this node's keys) only while someone looks, and cached.

Events: `round` (a phase of a round), `node` (a sample of the models),
`ledger` (the table changed), `verify` (a check of the ledger ended).
"""

from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import trio
from prometheus_client import Histogram

from consensus import verify

from .events import EventBus, Series
from .hosting import HostedModel
from .ledger import LedgerService
from .metrics import NodeMetrics
from .network import NetworkService
from .rounds import Answerer, RoundEvent, RoundResult

log = logging.getLogger("swarm.watch")

QUESTION_CHARS = 280  # of a question, in the live views; the full text is in the report
LEDGER_LOOK_S = 1.0
LINKS_TTL_S = 10.0
LINKS_TIMEOUT_S = 2.0
MAX_LINKED_PEERS = 32  # peers whose own peer tables are asked for
MAX_LINKS_BYTES = 1 << 20  # a peer table bigger than this is not read
FAILURES_SHOWN = 20


def cid(index: int) -> str:
    """A candidate's anonymous id, as the round report names it."""
    return f"c{index}"


def _answerer(a: Answerer) -> dict[str, str]:
    return {"model": a.model, "peer_id": a.peer_id}


def round_view(event: RoundEvent, report: Callable[[RoundResult], dict[str, Any]]) -> dict[str, Any]:
    """What the phase just ended settled, on top of what every view says (question, timings, misses)."""
    r, phase = event.result, event.phase
    view: dict[str, Any] = {
        "round_id": r.round_id,
        "phase": phase,
        "mode": r.mode,
        "question": r.question if len(r.question) <= QUESTION_CHARS else r.question[:QUESTION_CHARS] + "…",
        "timings_ms": {name: round(s * 1000, 1) for name, s in r.timings_s.items()},
        "missed": [
            {"peer_id": m.peer_id, "phase": m.phase, "reason": m.reason, "malformed": m.malformed}
            for m in r.misses
        ],
    }
    if phase == "started":
        view["answerers"] = [_answerer(a) for a in r.answerers]
        view["routing"] = r.routing.model_dump(mode="json") if r.routing is not None else None
    elif phase == "committed":
        view["committed"] = [_answerer(a) for a in r.committed]
    elif phase == "revealed":
        view["candidates"] = [
            {"id": cid(c.cid), "model": c.model, "peer_id": c.peer_id} for c in r.candidates
        ]
    elif phase == "judged":
        view["ballots"] = len(r.ballots)
        view["votes"] = len(r.votes)
        view["judges"] = dict(r.judges)
    elif phase == "finished":
        view["report"] = report(r)
    else:
        view["error"] = r.error
    return view


def _mean_since(
    histogram: Histogram, model: str, before: tuple[float, float]
) -> tuple[float | None, tuple[float, float]]:
    """The mean of a Prometheus histogram's observations for `model` since its (sum, count) `before`."""
    total = count = 0.0
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.labels.get("model") != model:
                continue
            if sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    new = count - before[1]
    return ((total - before[0]) / new if new > 0 else None), (total, count)


class Watch:
    def __init__(
        self,
        bus: EventBus,
        models: Mapping[str, HostedModel],
        metrics: NodeMetrics,
        report: Callable[[RoundResult], dict[str, Any]],
        *,
        ledger: LedgerService | None = None,
        network: NetworkService | None = None,
        rounds_kept: int = 50,
        series_length: int = 300,
        sample_interval_s: float = 2.0,
        verify_every_s: float = 15.0,
    ) -> None:
        self.bus = bus
        self.models = models
        self.metrics = metrics
        self.report = report
        self.ledger = ledger
        self.network = network
        self.rounds_kept = rounds_kept
        self.sample_interval_s = sample_interval_s
        self.verify_every_s = verify_every_s
        self._rounds: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.model_series = {name: Series(series_length) for name in models}
        self._ttft_before: dict[str, tuple[float, float]] = {name: (0.0, 0.0) for name in models}
        self.reputation = Series(series_length)
        self._head: str | None = None
        self.verified: dict[str, Any] | None = None  # the last check of the ledger
        self._verifying = trio.Lock()
        self._links: dict[str, list[str] | None] = {}
        self._links_at = -LINKS_TTL_S

    # ---- rounds

    def on_round(self, event: RoundEvent) -> None:
        """The RoundService's observer: keep the round's view up to date and tell the bus."""
        view = round_view(event, self.report)
        kept = self._rounds.pop(event.result.round_id, {"started_at": time.time()})
        self._rounds[event.result.round_id] = {**kept, **view}
        while len(self._rounds) > self.rounds_kept:
            self._rounds.popitem(last=False)
        self.bus.publish("round", view)

    def rounds(self) -> list[dict[str, Any]]:
        """The rounds kept, newest first."""
        return list(reversed(self._rounds.values()))

    def round(self, round_id: str) -> dict[str, Any] | None:
        return self._rounds.get(round_id)

    # ---- sampling

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sample_models)
            if self.ledger is not None:
                nursery.start_soon(self._follow_ledger, nursery)
            task_status.started()

    def sample_models(self) -> dict[str, dict[str, Any]]:
        sample = {}
        for name, model in self.models.items():
            ttft, self._ttft_before[name] = _mean_since(
                self.metrics.time_to_first_token, name, self._ttft_before[name]
            )
            values = {
                "waiting": float(model.queue.waiting),
                "running": float(model.running),
                "tokens_per_s": model.info.tokens_per_second,
                "ttft_s": ttft,
            }
            self.model_series[name].add(values)
            sample[name] = {**values, "state": model.state}
        return sample

    async def _sample_models(self) -> None:
        while True:
            self.bus.publish("node", {"at": time.time(), "models": self.sample_models()})
            await trio.sleep(self.sample_interval_s)

    async def _follow_ledger(self, nursery: trio.Nursery) -> None:
        last_check = -self.verify_every_s
        while True:
            if self.sample_ledger():
                self.bus.publish("ledger", self.ledger_view())
            due = trio.current_time() - last_check >= self.verify_every_s
            if due and self._head != self._verified_head():
                last_check = trio.current_time()
                nursery.start_soon(self.verify)  # beside the sampling, which goes on meanwhile
            await trio.sleep(LEDGER_LOOK_S)

    def sample_ledger(self) -> bool:
        """Sample the reputation table if the ledger's head moved since the last look; whether it did."""
        assert self.ledger is not None
        head = self.ledger.ledger.head
        if head == self._head:
            return False
        self._head = head
        book = self.ledger.ledger.book
        by_score = sorted(book.peers(), key=lambda p: -book.score(p))
        self.reputation.add({peer: book.score(peer) for peer in by_score})
        return True

    def ledger_view(self) -> dict[str, Any]:
        """The ledger's head and length, the reputation table with each peer's stakes and say, the series."""
        assert self.ledger is not None
        service = self.ledger
        ledger, rules = service.ledger, service.ledger.rules
        domains, rows = service.standing()
        return {
            "head": ledger.head,
            "entries": len(ledger),
            "waiting": len(ledger.waiting()),
            "rejected": service.rejected,
            "bootstrapping": ledger.book.bootstrapping(rules),
            "domains": domains,
            "reputation": [
                {
                    **row,
                    "answer_stake": row["free"] * rules.stake_fraction("answer"),
                    "judge_stake": row["free"] * rules.stake_fraction("judge"),
                    "say": any(s["say"] for s in row["domains"].values()),
                }
                for row in rows
            ],
            "series": self.reputation.to_json(),
            "verified": self.verified,
        }

    # ---- checking the ledger

    def _verified_head(self) -> str | None:
        return None if self.verified is None else self.verified["head"]

    async def verify(self) -> dict[str, Any]:
        """Check every entry on disk (signatures, evidence, chain links) and that they give the head this
        node holds. One check at a time: a caller that finds one running gets its result."""
        assert self.ledger is not None
        ledger = self.ledger.ledger
        async with self._verifying:
            if self.verified is not None and self.verified["head"] == ledger.head:
                return self.verified
            started = time.perf_counter()
            head = ledger.head
            wires = list(ledger.stored())  # the database is this thread's; the checking is not
            checked, failures = await trio.to_thread.run_sync(verify, wires, ledger.rules, ledger.bank)
            if checked.head != head and not failures:
                failures.append(f"this node holds head {head}, its entries on disk give {checked.head}")
            self.verified = {
                "head": head,
                "entries": len(wires),
                "ok": not failures,
                "failures": failures[:FAILURES_SHOWN],
                "more_failures": max(0, len(failures) - FAILURES_SHOWN),
                "at": time.time(),
                "seconds": round(time.perf_counter() - started, 3),
            }
        self.bus.publish("verify", self.verified)
        return self.verified

    # ---- the network

    async def links(self) -> dict[str, list[str] | None]:
        """Each peer's own peer table (the peers it sees), or None where it could not be read."""
        if self.network is None:
            return {}
        if trio.current_time() - self._links_at < LINKS_TTL_S:
            return self._links
        self._links_at = trio.current_time()
        peers = [e.info for e in self.network.table.peers() if e.info.http_url][:MAX_LINKED_PEERS]
        found: dict[str, list[str] | None] = {}
        async with httpx.AsyncClient(timeout=LINKS_TIMEOUT_S) as client, trio.open_nursery() as nursery:
            for info in peers:
                nursery.start_soon(self._ask_links, client, info.peer_id, info.http_url, found)
        self._links = found
        return found

    async def _ask_links(
        self, client: httpx.AsyncClient, peer_id: str, url: str, found: dict[str, list[str] | None]
    ) -> None:
        found[peer_id] = None
        try:
            async with client.stream("GET", f"{url.rstrip('/')}/v1/peers") as response:
                if response.status_code != 200:
                    return
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_LINKS_BYTES:
                        return  # not a peer table this node cares to read
            table = json.loads(body)
            # An announced address may lead elsewhere (a loopback address, seen from another host).
            if table["self"]["peer_id"] == peer_id:
                found[peer_id] = sorted({str(p["peer_id"]) for p in table["peers"]})
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.debug("could not read the peer table of %s: %s", peer_id, exc)
