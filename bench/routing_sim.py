"""The router's own costs and guarantees, on simulated networks: no network, no models.

    python -m bench.routing_sim [--trials 2000] [--cases 500] [--seed 0]

Prints: how long one routing decision takes (Avengers scoring of every model,
a MoE² candidate per model, the budgeted selection) for 3, 100 and 1000 peers,
with the scoring part apart; and, over random candidate sets and budgets,
how often the selection keeps every budget and how close it comes to the
optimum found by brute force over all subsets.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from routing.router import Expert, RouteDecision, route
from routing.scoring import score_models
from routing.selection import (
    EXACT_LIMIT,
    Budget,
    Candidate,
    Selection,
    select,
    subset_quality,
)
from routing.table import ClusterTable
from swarm.progress import Bars

PEER_COUNTS = (3, 100, 1000)
MAX_EXPERTS = 3
PROMPT_TOKENS = 200
MAX_TOKENS = 256
WARMUP_TRIALS = 5
# Brute force and selection sum and multiply in different orders: closer than this is the same value.
VALUE_TOLERANCE = 1e-9
BUDGET_TOLERANCE = 1e-9


# --- the routing decision ----------------------------------------------------------------------------


def unit_vectors(count: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    vectors = rng.standard_normal((count, dim))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def simulated_table(names: Sequence[str], clusters: int, dim: int, rng: np.random.Generator) -> ClusterTable:
    """A calibration table where each model has a skill, varied per cluster, and about a fifth of the
    cells have no data, so the scoring's prior path is exercised as it would be on a young network."""
    skill = rng.beta(4, 3, size=len(names))
    per_cluster = np.clip(skill + rng.normal(0, 0.15, size=(clusters, len(names))), 0.0, 1.0)
    counts = rng.integers(1, 31, size=(clusters, len(names)))
    counts[rng.random(counts.shape) < 0.2] = 0
    correct = rng.binomial(counts, per_cluster)
    return ClusterTable(tuple(names), unit_vectors(clusters, dim, rng), correct, counts)


def simulated_experts(names: Sequence[str], rng: np.random.Generator) -> list[Expert]:
    return [
        Expert(
            model=name,
            peer_id=f"peer-{i}",
            tokens_per_second=float(rng.uniform(10, 200)),
            queued=int(rng.integers(0, 5)),
            slots=int(rng.integers(1, 5)),
            rtt_s=float(rng.uniform(0.005, 0.2)),
            price_per_token=float(rng.uniform(0.0, 1e-5)),
        )
        for i, name in enumerate(names)
    ]


def decide(
    query: np.ndarray, table: ClusterTable, experts: list[Expert], budget: Budget
) -> tuple[RouteDecision, int]:
    """One routing decision exactly as a node makes it (`routing.router.route`), and its nanoseconds."""
    started = time.perf_counter_ns()
    decision = route(query, table, experts, budget, prompt_tokens=PROMPT_TOKENS, max_tokens=MAX_TOKENS)
    return decision, time.perf_counter_ns() - started


def scoring_ns(query: np.ndarray, table: ClusterTable) -> int:
    """The scoring part alone, timed on its own, to show what dominates."""
    started = time.perf_counter_ns()
    score_models(query, table)
    return time.perf_counter_ns() - started


def trial_budget(latencies: np.ndarray, costs: np.ndarray, rng: np.random.Generator) -> Budget:
    """Finite budgets from tight to loose: the latency of the 10th to the slowest percentile of peers,
    and one to four median answers' worth of cost, so that three experts sometimes do not fit."""
    return Budget(
        max_experts=MAX_EXPERTS,
        max_latency_s=float(np.quantile(latencies, rng.uniform(0.1, 1.0))),
        max_cost=float(np.median(costs) * rng.uniform(1.0, 4.0)),
        aggregation_s=0.05,
    )


def _summary_ms(samples_ns: Sequence[int]) -> dict[str, float]:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {
        "p50_ms": float(np.median(ms)),
        "p99_ms": float(np.quantile(ms, 0.99)),
        "mean_ms": float(ms.mean()),
    }


def decision_latency(
    peers: int, *, clusters: int = 64, dim: int = 384, trials: int = 2000, seed: int = 0
) -> dict:
    """Time whole routing decisions on a simulated network of `peers` experts, one model each.

    Returns p50/p99/mean of the whole decision and of its scoring part, the share
    of decisions that ran the exact search (it runs when at most EXACT_LIMIT
    candidates fit the budget alone, whatever the network size), and the share
    where the budget cost quality against the best `MAX_EXPERTS` unconstrained.
    """
    rng = np.random.default_rng(seed)
    names = [f"expert-{i:04d}" for i in range(peers)]
    table = simulated_table(names, clusters, dim, rng)
    experts = simulated_experts(names, rng)
    first = decide(unit_vectors(1, dim, rng)[0], table, experts, Budget())[0]
    latencies = np.array([c.latency_s for c in first.candidates])
    costs = np.array([c.cost for c in first.candidates])
    queries = unit_vectors(trials, dim, rng)
    budgets = [trial_budget(latencies, costs, rng) for _ in range(trials)]
    # The table's derived arrays are cached on first use; a node computes them once per table, not per query.
    for query, budget in zip(queries[:WARMUP_TRIALS], budgets, strict=False):
        decide(query, table, experts, budget)
    totals, scoring = [], []
    exact = bound = chosen = 0
    # Timing: no drawing thread takes the GIL from a decision; each update falls between two of them.
    with Bars(transient=True, timing=True) as bars:
        for n, (query, budget) in enumerate(zip(queries, budgets, strict=True), 1):
            decision, ns = decide(query, table, experts, budget)
            totals.append(ns)
            scoring.append(scoring_ns(query, table))
            bars.update(f"routing decisions among {peers} peers", n, trials)
            selection = decision.selection
            exact += selection.exact
            chosen += len(selection.chosen)
            bound += selection.quality < _unconstrained(decision.candidates) - VALUE_TOLERANCE
    return {
        "peers": peers,
        "clusters": clusters,
        "dim": dim,
        "trials": trials,
        "max_experts": MAX_EXPERTS,
        "exact_share": exact / trials,
        "selection": _search_label(exact / trials),
        "budget_bound_share": bound / trials,
        "mean_chosen": chosen / trials,
        **_summary_ms(totals),
        "scoring": _summary_ms(scoring),
    }


def _unconstrained(candidates: Sequence[Candidate]) -> float:
    """What the best MAX_EXPERTS would promise with no latency or cost budget."""
    best = sorted((c.quality for c in candidates), reverse=True)
    return subset_quality(best[:MAX_EXPERTS])


def _search_label(exact_share: float) -> str:
    if exact_share == 1.0:
        return "exact"
    if exact_share == 0.0:
        return "greedy"
    return f"{100 * (1 - exact_share):.0f}% greedy"


# --- budget compliance and optimality -----------------------------------------------------------------


def random_candidates(count: int, rng: np.random.Generator) -> list[Candidate]:
    """Candidates where bigger models answer better but slower and dearer, so budgets force trade-offs;
    about one in twenty is useless (quality 0), which `select` must leave out."""
    size = rng.random(count)
    quality = np.clip(0.2 + 0.7 * size + rng.normal(0, 0.1, count), 0.0, 0.99)
    quality[rng.random(count) < 0.05] = 0.0
    latency = 0.02 + (0.5 + 4.0 * size) * rng.lognormal(0, 0.3, count)
    cost = (0.1 + size) * rng.lognormal(0, 0.3, count)
    return [
        Candidate(f"c{i:02d}", float(q), float(lat), float(c))
        for i, (q, lat, c) in enumerate(zip(quality, latency, cost, strict=True))
    ]


def random_budget(
    candidates: Sequence[Candidate], max_experts: int, rng: np.random.Generator, *, loose: bool
) -> Budget:
    """A budget from infeasible to unlimited on each axis.

    Latency: below the fastest candidate (nothing fits), a quantile of the candidates'
    latencies, or none. Cost: below the cheapest, a multiple of the median, or none.
    `loose` draws from the looser end, so that more than EXACT_LIMIT candidates
    fit alone and `select` has to run its greedy.
    """
    latencies = np.array([c.latency_s for c in candidates])
    costs = np.array([c.cost for c in candidates])
    low = 0.6 if loose else 0.0
    latency = _pick(
        rng,
        infeasible=0.5 * latencies.min(),
        finite=float(np.quantile(latencies, rng.uniform(low, 1.0))),
    )
    cost = _pick(
        rng,
        infeasible=0.5 * costs.min(),
        finite=float(np.median(costs) * rng.uniform(1.5 if loose else 0.3, 4.0)),
    )
    return Budget(max_experts, latency, cost, aggregation_s=float(rng.choice([0.0, 0.3])))


def _pick(rng: np.random.Generator, *, infeasible: float, finite: float) -> float:
    draw = rng.random()
    if draw < 0.05:
        return infeasible
    return math.inf if draw > 0.85 else finite


def within_budget(chosen: Sequence[Candidate], budget: Budget) -> bool:
    """Checked from the budget's definition, not with `selection.feasible`, so a shared bug cannot hide."""
    if len(chosen) > budget.max_experts:
        return False
    if not chosen:
        return True
    latency = max(c.latency_s for c in chosen) + (budget.aggregation_s if len(chosen) > 1 else 0.0)
    cost = math.fsum(c.cost for c in chosen)
    return latency <= budget.max_latency_s * (1 + BUDGET_TOLERANCE) and cost <= budget.max_cost * (
        1 + BUDGET_TOLERANCE
    )


@cache
def _combinations(count: int, size: int) -> np.ndarray:
    return np.array(list(itertools.combinations(range(count), size)), dtype=np.int64).reshape(-1, size)


def brute_force_optimum(candidates: Sequence[Candidate], budget: Budget) -> float | None:
    """The best 1 - prod(1 - q) over every non-empty subset within the budget; None if none is.

    Vectorised over all subsets of each size, so 40 candidates with up to 4 experts
    (about 100,000 subsets) take milliseconds.
    """
    quality = np.array([c.quality for c in candidates])
    latency = np.array([c.latency_s for c in candidates])
    cost = np.array([c.cost for c in candidates])
    best: float | None = None
    for size in range(1, min(budget.max_experts, len(candidates)) + 1):
        subsets = _combinations(len(candidates), size)
        overhead = budget.aggregation_s if size > 1 else 0.0
        ok = (latency[subsets].max(axis=1) + overhead <= budget.max_latency_s) & (
            cost[subsets].sum(axis=1) <= budget.max_cost
        )
        if ok.any():
            value = float((1.0 - np.prod(1.0 - quality[subsets[ok]], axis=1)).max())
            best = value if best is None else max(best, value)
    return best


@dataclass
class _Tally:
    sizes: set[int] = field(default_factory=set)
    cases: int = 0
    within: int = 0
    infeasible: int = 0
    optimal: int = 0
    ratios: list[float] = field(default_factory=list)

    def add(self, size: int, selection: Selection, budget: Budget, optimum: float | None) -> None:
        self.sizes.add(size)
        self.cases += 1
        self.within += within_budget(selection.chosen, budget)
        if optimum is None:
            # Nothing fits: the right answer is the empty selection, and it is optimal by definition.
            self.infeasible += 1
            self.optimal += not selection.chosen
            return
        self.optimal += selection.quality >= optimum - VALUE_TOLERANCE
        self.ratios.append(selection.quality / optimum)

    def summary(self) -> dict:
        return {
            "cases": self.cases,
            "sizes": (min(self.sizes), max(self.sizes)) if self.sizes else None,
            "within_budget": self.within / self.cases if self.cases else math.nan,
            "none_feasible": self.infeasible / self.cases if self.cases else math.nan,
            "optimal": self.optimal / self.cases if self.cases else math.nan,
            "mean_ratio": statistics.fmean(self.ratios) if self.ratios else math.nan,
            "worst_ratio": min(self.ratios, default=math.nan),
        }


def budget_compliance(*, cases: int = 500, seed: int = 0) -> dict:
    """Random candidate sets and budgets through `select`, against brute force.

    Half the cases draw 3..12 candidates (exact search), half 20..40 with looser
    budgets (greedy, once more than EXACT_LIMIT fit alone). Cases are filed under the
    search `select` actually ran. For each search: the share of cases whose choice
    keeps every budget, the share where nothing was feasible, the share that reached
    the brute-force optimum, and the mean and worst ratio of achieved to optimal quality
    (over cases where something was feasible).
    """
    rng = np.random.default_rng(seed)
    tallies = {"exact": _Tally(), "greedy": _Tally()}
    with Bars(transient=True) as bars:
        for case in range(cases):
            large = case % 2 == 1
            size = int(rng.integers(20, 41) if large else rng.integers(3, 13))
            candidates = random_candidates(size, rng)
            budget = random_budget(candidates, int(rng.integers(1, 5)), rng, loose=large)
            selection = select(candidates, budget)
            tallies["exact" if selection.exact else "greedy"].add(
                size, selection, budget, brute_force_optimum(candidates, budget)
            )
            bars.update("budget cases against brute force", case + 1, cases)
    return {"cases": cases, "exact_limit": EXACT_LIMIT, **{k: t.summary() for k, t in tallies.items()}}


# --- output ------------------------------------------------------------------------------------------


def print_decisions(results: Sequence[dict]) -> None:
    first = results[0]
    clusters, dim, experts = first["clusters"], first["dim"], first["max_experts"]
    print(f"routing decision ({clusters} clusters, {dim}-d, max {experts} experts)")
    print("scoring: mean ms of the Avengers scoring alone; bound: decisions where the budget cost quality")
    print(
        f"{'peers':>6} {'selection':<11} {'trials':>6} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
        f" {'scoring':>8} {'bound':>6}"
    )
    for r in results:
        print(
            f"{r['peers']:>6} {r['selection']:<11} {r['trials']:>6} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}"
            f" {r['mean_ms']:>8.3f} {r['scoring']['mean_ms']:>8.3f} {100 * r['budget_bound_share']:>5.0f}%"
        )


def print_compliance(result: dict) -> None:
    print(
        f"\nbudget compliance ({result['cases']} cases, exact search up to {result['exact_limit']} fitting)"
    )
    print(
        f"{'search':<7} {'sizes':>6} {'cases':>6} {'within budget':>14} {'none feasible':>14}"
        f" {'optimal':>8} {'mean/worst quality vs optimum':>30}"
    )
    for search in ("exact", "greedy"):
        s = result[search]
        sizes = f"{s['sizes'][0]}-{s['sizes'][1]}" if s["sizes"] else "-"
        print(
            f"{search:<7} {sizes:>6} {s['cases']:>6} {100 * s['within_budget']:>13.1f}%"
            f" {100 * s['none_feasible']:>13.1f}% {100 * s['optimal']:>7.1f}%"
            f" {s['mean_ratio']:>22.4f} / {s['worst_ratio']:.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=2000, help="decisions per network size")
    parser.add_argument("--cases", type=int, default=500, help="budget compliance cases")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print_decisions([decision_latency(peers, trials=args.trials, seed=args.seed) for peers in PEER_COUNTS])
    print_compliance(budget_compliance(cases=args.cases, seed=args.seed))


if __name__ == "__main__":
    main()
