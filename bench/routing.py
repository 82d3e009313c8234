"""Does routing pick better experts than any one model? Real models on a real testnet, held-out questions.

    python -m bench.routing [--datasets civics,medmcqa] [--limit N] [--node URL]

1. Every model of a 3-node testnet (the three offline models) answers every
   question of each data set, calibration and held-out parts alike, through
   the node API; answers are graded and stored (resumable, in --store).
2. A routing table is built from the calibration part only, and each
   held-out question is routed as the node routes it (MiniLM embedding,
   Avengers scores, MoE² selection of one expert, no budget).
3. Accuracy on the held-out part: routed top-1 vs each single model vs a
   random model vs the oracle (right if any model is), per data set and
   overall, and routed accuracy for a sweep of K (the number of clusters).
4. The routing decision's latency for 3, 100 and 1,000 simulated peers with
   64 clusters, and the selection's budget compliance (bench.routing_sim);
   then, on the testnet, how often a routed request with a latency budget
   really came back within it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench import routing_sim
from bench.harness import DEFAULT_STORE, on_network
from core.records import SWARM_MODEL
from routing import datasets
from routing.calibration import Outcome, ResultStore, calibrate, table_inputs
from routing.clusters import DEFAULT_CLUSTERS, build_table, cluster_count
from routing.datasets import Item
from routing.embeddings import MiniLMEmbedder
from routing.router import Expert, route
from routing.selection import Budget
from routing.table import ClusterTable
from swarm.client import AsyncClient
from swarm.progress import Bars, waiting

SWEEP = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class Split:
    calibration: list[Item]
    held_out: list[Item]


def load_splits(names: Sequence[str], limit: int | None, seed: int) -> dict[str, Split]:
    splits = {}
    for name in names:
        items = datasets.load(name)
        random.Random(seed).shuffle(items)
        calibration, held_out = datasets.split(items[:limit] if limit else items, seed=seed)
        splits[name] = Split(calibration, held_out)
    return splits


async def collect(url: str, items: list[Item], store: ResultStore, concurrency: int) -> list[str]:
    """Every model's graded answer to every item, asked through the node (resuming from the store)."""
    async with AsyncClient(url, timeout=600) as client:
        models = sorted(card.id for card in await client.models() if card.id != SWARM_MODEL)

        async def ask(model: str, item: Item, max_tokens: int) -> str:
            return (
                await client.chat(list(item.messages), model=model, max_tokens=max_tokens, temperature=0)
            ).text

        with Bars(transient=True) as bars:  # a row per model: its answers so far
            await calibrate(items, models, ask, store, concurrency=concurrency, on_progress=bars.update)
    return models


def routed_choice(table: ClusterTable, vector: np.ndarray, models: list[str]) -> str:
    """The expert the node would pick with no budget: equal hosts, so only the predicted quality decides."""
    experts = [Expert(m, None, 50.0, 0, 1, 0.0, 0.0) for m in models]
    decision = route(vector, table, experts, Budget(), prompt_tokens=0, max_tokens=1)
    assert decision.best is not None
    return decision.best.model


def evaluate(
    splits: dict[str, Split],
    outcomes: list[Outcome],
    models: list[str],
    embed: dict[tuple[str, str], np.ndarray],
    k: int | None,
    seed: int,
) -> tuple[ClusterTable, dict[str, dict[str, float]]]:
    """The table from the calibration part, and accuracy on the held-out part per data set (and "all")
    of: routed, each model, random, oracle."""
    right = {(o.dataset, o.item, o.model): o.correct for o in outcomes}
    calibration = [i for s in splits.values() for i in s.calibration]
    items, results = table_inputs(calibration, outcomes, models)
    vectors = np.array([embed[(i.dataset, i.id)] for i in items])
    table = build_table(vectors, results, k=cluster_count(len(items), k), seed=seed, created_at=time.time())
    rows: dict[str, dict[str, float]] = {}
    for name, part in [*splits.items(), ("all", Split([], [i for s in splits.values() for i in s.held_out]))]:
        held = [i for i in part.held_out if all((i.dataset, i.id, m) in right for m in models)]
        if not held:
            continue
        score: dict[str, float] = {m: 0.0 for m in models} | {"routed": 0.0, "random": 0.0, "oracle": 0.0}
        for item in held:
            verdicts = {m: right[(item.dataset, item.id, m)] for m in models}
            for m in models:
                score[m] += verdicts[m]
            score["random"] += sum(verdicts.values()) / len(models)
            score["oracle"] += any(verdicts.values())
            score["routed"] += verdicts[routed_choice(table, embed[(item.dataset, item.id)], models)]
        rows[name] = {key: value / len(held) for key, value in score.items()} | {"n": len(held)}
    rows["table"] = {"clusters": table.num_clusters}
    return table, rows


def interval95(p: float, n: int) -> float:
    return 1.96 * math.sqrt(p * (1 - p) / n) if n else math.nan


def print_accuracy(rows: dict[str, dict[str, float]], models: list[str]) -> None:
    print(f"\nheld-out accuracy (K = {rows['table']['clusters']:.0f} clusters; ± is a 95% interval)")
    columns = ["routed", *models, "random", "oracle"]
    print(f"{'data set':10} {'n':>4} " + " ".join(f"{c[:14]:>14}" for c in columns) + f" {'routed-best':>12}")
    for name, row in rows.items():
        if name == "table":
            continue
        n = int(row["n"])
        best_single = max(row[m] for m in models)
        cells = " ".join(f"{row[c]:>7.1%} ±{interval95(row[c], n):>4.1%}"[:14].rjust(14) for c in columns)
        print(f"{name:10} {n:>4} {cells} {row['routed'] - best_single:>+12.1%}")


def sweep(
    splits: dict[str, Split], outcomes: list[Outcome], models: list[str], embed: dict, seed: int
) -> None:
    print("\nrouted accuracy on all held-out questions by K (the number of clusters)")
    print(f"{'K':>4} {'clusters':>9} {'routed':>8}")
    for k in SWEEP:
        _, rows = evaluate(splits, outcomes, models, embed, k, seed)
        print(f"{k:>4} {rows['table']['clusters']:>9.0f} {rows['all']['routed']:>8.1%}")


async def real_budgets(url: str, items: list[Item], budgets: Sequence[float]) -> None:
    """Routed requests with a latency budget: did the answer come back in time, and who answered?"""
    print("\nlatency budgets on the testnet (routed requests, max_tokens 32)")
    print("predicted: the router's latency promise for the expert it chose (every token to max_tokens)")
    header = f"{'budget s':>9} {'asked':>6} {'refused':>8} {'in time':>8} {'p50 s':>7} {'max s':>7}"
    print(f"{header} {'predicted':>10}  answered by")
    # Timing: the latencies are measured here, with no drawing thread beside them.
    async with (
        httpx.AsyncClient(base_url=url, timeout=300) as http,
        Bars(transient=True, timing=True) as bars,
    ):
        for budget in budgets:
            times, refused, experts, promised = [], 0, [], []
            for n, item in enumerate(items, 1):
                body = {
                    "model": SWARM_MODEL,
                    "messages": [{"role": "user", "content": item.question}],
                    "max_tokens": 32,
                    "temperature": 0,
                    "swarm": {"mode": "route", "max_latency_s": budget},
                }
                started = time.perf_counter()
                response = await http.post("/v1/chat/completions", json=body)
                seconds = time.perf_counter() - started
                bars.update(f"requests within {budget:g} s", n, len(items))
                if response.status_code == 400:
                    refused += 1
                    continue
                response.raise_for_status()
                times.append(seconds)
                report = response.json()["swarm"]
                experts.append(report["answered_by"]["model"])
                promised.append(report["selection"]["latency_s"] or math.inf)
            in_time = sum(t <= budget for t in times)
            share = f"{in_time / len(times):.0%}" if times else "-"
            p50 = f"{statistics.median(times):.2f}" if times else "-"
            worst = f"{max(times):.2f}" if times else "-"
            who = ", ".join(f"{m[:12]} {experts.count(m)}" for m in sorted(set(experts)))
            predicted = f"{statistics.median(promised):.2f}" if promised else "-"
            row = f"{budget:>9.2f} {len(items):>6} {refused:>8} {share:>8} {p50:>7} {worst:>7}"
            print(f"{row} {predicted:>10}  {who}")


async def run(args: argparse.Namespace, url: str) -> None:
    names = args.datasets.split(",")
    splits = load_splits(names, args.limit, args.seed)
    everything = [i for s in splits.values() for i in (*s.calibration, *s.held_out)]
    store = ResultStore(args.store)
    print(f"asking every model {len(everything)} questions of {', '.join(names)} (store: {args.store})")
    models = await collect(url, everything, store, args.concurrency)
    with waiting(f"embedding {len(everything)} questions"):
        vectors = MiniLMEmbedder().embed([i.question for i in everything])
    embed = {(i.dataset, i.id): v for i, v in zip(everything, vectors, strict=True)}
    outcomes = store.outcomes()
    table, rows = evaluate(splits, outcomes, models, embed, None, args.seed)
    print_accuracy(rows, models)
    sweep(splits, outcomes, models, embed, args.seed)
    print()
    routing_sim.print_decisions([routing_sim.decision_latency(p, trials=args.trials) for p in (3, 100, 1000)])
    routing_sim.print_compliance(routing_sim.budget_compliance(cases=args.cases))
    async with AsyncClient(url) as client:  # the testnet routes with the table evaluated above
        await client.install_routing_table(json.loads(table.to_json()))
    sample = random.Random(args.seed).sample(
        [i for s in splits.values() for i in s.held_out], args.budget_questions
    )
    await real_budgets(url, sample, (0.5, 1.0, 2.0, 4.0, 60.0))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="civics,medmcqa")
    parser.add_argument("--limit", type=int, help="questions per data set (default: all)")
    parser.add_argument("--node", help="an existing node to use instead of starting a testnet")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help="graded answers, reused")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--trials", type=int, default=2000, help="simulated routing decisions per size")
    parser.add_argument("--cases", type=int, default=500, help="simulated budget cases")
    parser.add_argument("--budget-questions", type=int, default=12, help="real routed requests per budget")
    args = parser.parse_args()
    print(f"default K = {DEFAULT_CLUSTERS}")
    on_network(run, args)


if __name__ == "__main__":
    main()
