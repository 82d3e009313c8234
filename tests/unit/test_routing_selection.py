"""MoE² selection against hand-computed cases and brute force over every subset."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from routing.selection import (
    EXACT_LIMIT,
    Budget,
    Candidate,
    Reason,
    feasible,
    predict_cost,
    predict_latency_s,
    select,
    subset_quality,
)

A = Candidate("a", quality=0.9, latency_s=1.0, cost=5.0)
B = Candidate("b", quality=0.6, latency_s=3.0, cost=1.0)
C = Candidate("c", quality=0.5, latency_s=1.0, cost=1.0)


def test_latency_budget_drops_the_slow_expert() -> None:
    s = select([A, B, C], Budget(max_experts=2, max_latency_s=2.0, max_cost=10.0))
    assert [c.name for c in s.chosen] == ["a", "c"]
    assert s.quality == pytest.approx(1 - 0.1 * 0.5)
    assert (s.latency_s, s.cost, s.exact) == (1.0, 6.0, True)
    assert s.reasons == {"a": Reason.CHOSEN, "b": Reason.OVER_LATENCY, "c": Reason.CHOSEN}


def test_cost_budget_prefers_the_strong_expert_alone() -> None:
    # {a} 0.9 beats {b, c} 1 - 0.4 * 0.5 = 0.8; a with anything else costs 6 > 5.5.
    s = select([A, B, C], Budget(max_experts=3, max_cost=5.5))
    assert [c.name for c in s.chosen] == ["a"]
    assert s.reasons["b"] == s.reasons["c"] == Reason.OVER_COST_WITH_CHOSEN


def test_aggregation_overhead_counts_only_for_two_or_more() -> None:
    s = select([A, C], Budget(max_experts=2, max_latency_s=2.0, aggregation_s=1.5))
    assert [c.name for c in s.chosen] == ["a"]
    assert s.latency_s == 1.0
    assert s.reasons["c"] == Reason.OVER_LATENCY_WITH_CHOSEN


def test_budget_that_rules_everything_out() -> None:
    s = select([A, B, C], Budget(max_experts=3, max_latency_s=0.5))
    assert (s.chosen, s.quality, s.latency_s, s.cost) == ((), 0.0, 0.0, 0)
    assert set(s.reasons.values()) == {Reason.OVER_LATENCY}
    s = select([A, B], Budget(max_experts=3, max_cost=0.5))
    assert set(s.reasons.values()) == {Reason.OVER_COST}


def test_expert_limit() -> None:
    s = select([C, B, A], Budget(max_experts=1))
    assert [c.name for c in s.chosen] == ["a"]
    assert s.reasons == {"a": Reason.CHOSEN, "b": Reason.EXPERT_LIMIT, "c": Reason.EXPERT_LIMIT}


def test_no_gain() -> None:
    sure = Candidate("sure", 1.0, 1.0, 1.0)
    useless = Candidate("useless", 0.0, 0.0, 0.0)
    s = select([A, sure, useless], Budget(max_experts=3))
    assert [c.name for c in s.chosen] == ["sure"]
    assert s.reasons == {"a": Reason.NO_GAIN, "sure": Reason.CHOSEN, "useless": Reason.NO_GAIN}


def test_equal_quality_prefers_the_cheaper_then_faster() -> None:
    dear, cheap = Candidate("dear", 0.7, 1.0, 3.0), Candidate("cheap", 0.7, 2.0, 1.0)
    assert [c.name for c in select([dear, cheap], Budget()).chosen] == ["cheap"]
    slow, fast = Candidate("slow", 0.7, 2.0, 1.0), Candidate("fast", 0.7, 1.0, 1.0)
    assert [c.name for c in select([slow, fast], Budget()).chosen] == ["fast"]


def test_chosen_keep_input_order_and_names_must_be_unique() -> None:
    assert [c.name for c in select([C, A], Budget(max_experts=2)).chosen] == ["c", "a"]
    with pytest.raises(ValueError):
        select([A, A], Budget())
    with pytest.raises(ValueError):
        Candidate("x", 1.5, 0, 0)
    with pytest.raises(ValueError):
        Budget(max_experts=0)


def test_predicted_latency_and_cost() -> None:
    # 2 requests ahead on 1 slot: 3 generations of 100 tokens at 50 tokens/s, plus the round trip.
    assert predict_latency_s(rtt_s=0.05, queued=2, max_tokens=100, tokens_per_second=50) == pytest.approx(
        6.05
    )
    # Two slots drain the two requests ahead in one wave.
    latency = predict_latency_s(rtt_s=0.05, queued=2, max_tokens=100, tokens_per_second=50, slots=2)
    assert latency == pytest.approx(4.05)
    assert predict_latency_s(rtt_s=0.0, queued=0, max_tokens=10, tokens_per_second=None) == math.inf
    assert predict_cost(price_per_token=0.5, prompt_tokens=20, max_tokens=100) == 60.0


def random_candidates(rng: random.Random, n: int) -> list[Candidate]:
    return [
        Candidate(
            f"m{i}",
            quality=rng.choice([0.0, 1.0, round(rng.random(), 2), rng.random()])
            if rng.random() < 0.2
            else rng.random(),
            latency_s=rng.uniform(0.1, 10),
            cost=rng.choice([0.0, rng.uniform(0, 5)]),
        )
        for i in range(n)
    ]


def random_budget(rng: random.Random) -> Budget:
    return Budget(
        max_experts=rng.randint(1, 6),
        max_latency_s=rng.choice([math.inf, rng.uniform(0.05, 12), 0.01]),
        max_cost=rng.choice([math.inf, rng.uniform(0, 12), 0.0]),
        aggregation_s=rng.choice([0.0, rng.uniform(0, 2)]),
    )


def brute_force(candidates: list[Candidate], budget: Budget) -> tuple[float, tuple[int, float]]:
    """Best value over every feasible subset, and the size and cost of the smallest, cheapest best one."""
    subsets = [
        list(s)
        for r in range(len(candidates) + 1)
        for s in itertools.combinations(candidates, r)
        if feasible(s, budget)
    ]
    best = max(subset_quality([c.quality for c in s]) for s in subsets)
    ties = [s for s in subsets if subset_quality([c.quality for c in s]) >= best - 1e-12]
    return best, min((len(s), sum(c.cost for c in s)) for s in ties)


def test_exact_search_matches_brute_force() -> None:
    rng = random.Random(4)
    for _ in range(400):
        candidates, budget = random_candidates(rng, rng.randint(0, 9)), random_budget(rng)
        s = select(candidates, budget)
        best, (size, cost) = brute_force(candidates, budget)
        assert s.exact and feasible(s.chosen, budget)
        assert s.quality == pytest.approx(best, abs=1e-12)
        assert len(s.chosen) == size
        assert s.cost == pytest.approx(cost)
        assert {n for n, r in s.reasons.items() if r is Reason.CHOSEN} == {c.name for c in s.chosen}


def test_every_reason_for_leaving_out_holds() -> None:
    rng = random.Random(5)
    for _ in range(200):
        candidates, budget = random_candidates(rng, rng.randint(1, 8)), random_budget(rng)
        s = select(candidates, budget)
        for c in candidates:
            reason, together = s.reasons[c.name], [*s.chosen, c]
            if reason is Reason.OVER_LATENCY:
                assert not feasible([c], budget)
            elif reason is Reason.NO_GAIN:
                gain = subset_quality([x.quality for x in together]) - s.quality
                assert gain <= 1e-12
            elif reason is not Reason.CHOSEN:
                assert not feasible(together, budget)


def test_greedy_beyond_the_exact_limit_stays_within_budget() -> None:
    rng = random.Random(6)
    greedy_runs = 0
    for _ in range(100):
        candidates, budget = random_candidates(rng, rng.randint(EXACT_LIMIT + 1, 40)), random_budget(rng)
        s = select(candidates, budget)
        searched = [c for c in candidates if c.quality > 0 and feasible([c], budget)]
        assert s.exact == (len(searched) <= EXACT_LIMIT)
        greedy_runs += not s.exact
        assert feasible(s.chosen, budget)
        best_single = max((c.quality for c in candidates if feasible([c], budget)), default=0.0)
        assert s.quality >= best_single - 1e-12
    assert greedy_runs >= 20


def test_exact_search_on_the_full_limit_is_quick() -> None:
    rng = random.Random(8)
    candidates = [
        Candidate(f"m{i}", rng.uniform(0.3, 0.6), rng.uniform(1, 5), rng.uniform(1, 3)) for i in range(16)
    ]
    s = select(candidates, Budget(max_experts=8, max_latency_s=4.0, max_cost=12.0))
    best, _ = brute_force(candidates, Budget(max_experts=8, max_latency_s=4.0, max_cost=12.0))
    assert s.exact and s.quality == pytest.approx(best, abs=1e-12)
