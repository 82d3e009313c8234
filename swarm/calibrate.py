"""`swarm calibrate`: ask every model in the network the calibration questions; route by what they got right.

The answers go through a node's API like any request (so every model in the
network is reached, wherever it runs) and are graded and stored as they come
(`routing.calibration`): an interrupted run picks up where it stopped. The
routing table is then built from every stored outcome of the calibration
part of each dataset seen so far, and installed on the node, which spreads
it to its peers.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import trio

from core.records import SWARM_MODEL
from node.config import default_data_dir
from routing import datasets
from routing.calibration import CalibrationSummary, ResultStore, calibrate, table_inputs
from routing.clusters import build_table, cluster_count
from routing.datasets import Item
from routing.embeddings import Embedder, MiniLMEmbedder
from routing.sandbox import SandboxUnavailable, ensure_available
from routing.table import ClusterTable

from .client import AsyncClient
from .errors import SwarmError
from .progress import Bars, waiting


def default_store() -> Path:
    return default_data_dir().parent / "calibration" / "results.jsonl"


@dataclass(frozen=True)
class CalibrationReport:
    summary: CalibrationSummary
    table: ClusterTable
    adopted: bool


def calibration_items(name: str, *, seed: int, limit: int | None) -> list[Item]:
    """The first `limit` items of a dataset's calibration part, in an order shuffled by `seed`
    (so a small slice spans the dataset's topics rather than its first few)."""
    part, _ = datasets.split(datasets.load(name), seed=seed)
    random.Random(seed).shuffle(part)
    return part[:limit] if limit is not None else part


async def run(
    node: str,
    names: Sequence[str],
    *,
    limit: int | None = None,
    store_path: Path | None = None,
    clusters: int | None = None,
    seed: int = 0,
    concurrency: int = 2,
    models: Sequence[str] | None = None,
    api_key: str | None = None,
    timeout: float = 300.0,
    embedder: Embedder | None = None,
    out: TextIO = sys.stderr,
) -> CalibrationReport:
    items = [item for name in names for item in calibration_items(name, seed=seed, limit=limit)]
    if any(item.kind == "code" for item in items):
        # Before any model is asked: code answers are graded by running them, and only isolated.
        try:
            ensure_available()
        except SandboxUnavailable as exc:
            raise SwarmError(f"cannot grade code answers: {exc}") from None
    store = ResultStore(store_path or default_store())
    async with AsyncClient(node, api_key=api_key, timeout=timeout) as client:
        available = [card.id for card in await client.models() if card.id != SWARM_MODEL]
        unknown = sorted(set(models or ()) - set(available))
        if unknown:
            raise SwarmError(f"not in the network: {', '.join(unknown)}; available: {', '.join(available)}")
        chosen = list(models or available)

        async def ask(model: str, item: Item, max_tokens: int) -> str:
            answer = await client.chat(list(item.messages), model=model, max_tokens=max_tokens, temperature=0)
            return answer.text

        print(
            f"calibrating {', '.join(chosen)} on {len(items)} questions of {', '.join(names)}; "
            f"answers kept in {store.path}",
            file=out,
        )
        with Bars() as bars:  # a row per model: its questions answered so far
            summary = await calibrate(
                items, chosen, ask, store, concurrency=concurrency, on_progress=bars.update
            )
        # Every model in the network that has answers stored, not only the ones asked this time.
        with waiting("building the routing table"):  # the embedder loads and embeds every question
            table = await trio.to_thread.run_sync(_table, store, available, seed, clusters, embedder)
        installed = await client.install_routing_table(json.loads(table.to_json()))
    return CalibrationReport(summary, table, bool(installed["adopted"]))


def _table(
    store: ResultStore, models: list[str], seed: int, clusters: int | None, embedder: Embedder | None
) -> ClusterTable:
    """The table from every stored outcome of the calibration parts (held-out questions stay unseen)."""
    outcomes = store.outcomes()
    names = sorted({o.dataset for o in outcomes})
    part = [item for name in names for item in calibration_items(name, seed=seed, limit=None)]
    items, results = table_inputs(part, outcomes, models)
    if not items:
        raise SwarmError("no calibration answers are stored yet for these models")
    embedder = embedder or MiniLMEmbedder()
    vectors = embedder.embed([item.question for item in items])
    return build_table(
        vectors,
        results,
        k=cluster_count(len(items), clusters),
        seed=seed,
        embedder=embedder.name,
        created_at=time.time(),
    )


def print_report(report: CalibrationReport, out: TextIO = sys.stdout) -> None:
    table, summary = report.table, report.summary
    print(f"{'MODEL':32} {'RIGHT':>7} {'ASKED':>7} {'ACCURACY':>9}", file=out)
    for i, model in enumerate(table.models):
        right, asked = int(table.correct[:, i].sum()), int(table.counts[:, i].sum())
        print(f"{model:32} {right:>7} {asked:>7} {right / asked if asked else 0:>9.1%}", file=out)
    state = "installed" if report.adopted else "not installed (the node holds a newer table)"
    print(
        f"routing table {table.version}: {table.num_clusters} clusters; {state}. "
        f"This run asked {summary.asked}, reused {summary.skipped}, failed {summary.failed}.",
        file=out,
    )
