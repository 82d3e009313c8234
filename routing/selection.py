"""MoE² budgeted expert selection: the subset of experts worth asking within a latency and cost budget.

The chosen experts run in parallel, so a subset takes as long as its slowest
member (plus a fixed aggregation overhead once there are two or more answers
to merge) and costs the sum of its members. Its value is the probability that
at least one member answers right, 1 - prod(1 - q_i), assuming independent
errors. Value, latency, cost and size all grow with the subset, which is what
makes MoE²'s pruning valid: no superset of an infeasible subset is feasible,
and no subset beats the bound of adding its best remaining candidates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

EXACT_LIMIT = 16
# Values closer than this are a tie, so float noise in the product cannot pick a bigger or dearer subset.
TIE = 1e-12


def predict_latency_s(
    *, rtt_s: float, queued: int, max_tokens: int, tokens_per_second: float | None, slots: int = 1
) -> float:
    """Seconds until an expert's answer is back: the round trip plus its own and the queued generations.

    Pessimistic on purpose, so that a budget kept on paper is kept in fact: every
    request ahead (running or waiting) is assumed to run to `max_tokens`, and
    they drain `slots` at a time. An expert that announced no speed gets
    infinity: nothing can be promised about it.
    """
    if tokens_per_second is None or tokens_per_second <= 0:
        return math.inf
    waves = queued // max(1, slots) + 1
    return rtt_s + waves * max_tokens / tokens_per_second


def predict_cost(*, price_per_token: float, prompt_tokens: int, max_tokens: int) -> float:
    """What an answer may cost at most: the announced price (energy or money) for every token in and out."""
    return price_per_token * (prompt_tokens + max_tokens)


@dataclass(frozen=True, slots=True)
class Candidate:
    name: str
    quality: float
    latency_s: float
    cost: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.quality <= 1.0:
            raise ValueError(f"{self.name}: quality must lie in [0, 1], got {self.quality}")
        if not (self.latency_s >= 0 and self.cost >= 0):
            raise ValueError(f"{self.name}: latency and cost must be non-negative")


@dataclass(frozen=True, slots=True)
class Budget:
    max_experts: int = 1
    max_latency_s: float = math.inf
    max_cost: float = math.inf
    aggregation_s: float = 0.0

    def __post_init__(self) -> None:
        if self.max_experts < 1:
            raise ValueError("a budget must allow at least one expert")


class Reason(StrEnum):
    CHOSEN = "chosen"
    OVER_LATENCY = "over latency budget"
    OVER_COST = "over cost budget"
    OVER_LATENCY_WITH_CHOSEN = "over latency budget together with the chosen experts"
    OVER_COST_WITH_CHOSEN = "over cost budget together with the chosen experts"
    EXPERT_LIMIT = "expert limit reached"
    NO_GAIN = "not needed: no gain within budget"


@dataclass(frozen=True, slots=True)
class Selection:
    """The chosen experts (in input order), what the subset promises, and why each candidate is in or out."""

    chosen: tuple[Candidate, ...]
    quality: float
    latency_s: float
    cost: float
    reasons: dict[str, Reason]
    exact: bool


def subset_quality(qualities: Sequence[float]) -> float:
    """Probability that at least one of the experts is right, their errors taken as independent."""
    miss = 1.0
    for q in sorted(qualities):  # a fixed order, so equal subsets give equal floats
        miss *= 1.0 - q
    return 1.0 - miss


def subset_latency(latencies: Sequence[float], budget: Budget) -> float:
    if not latencies:
        return 0.0
    return max(latencies) + (budget.aggregation_s if len(latencies) > 1 else 0.0)


def feasible(members: Sequence[Candidate], budget: Budget) -> bool:
    return (
        len(members) <= budget.max_experts
        and subset_latency([c.latency_s for c in members], budget) <= budget.max_latency_s
        and sum(c.cost for c in members) <= budget.max_cost
    )


def select(candidates: Sequence[Candidate], budget: Budget) -> Selection:
    """The best subset within the budget: exact up to EXACT_LIMIT candidates that fit alone, greedy beyond."""
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError("candidate names must be unique")
    reasons: dict[str, Reason] = {}
    fitting = []
    for c in candidates:
        if c.latency_s > budget.max_latency_s:
            reasons[c.name] = Reason.OVER_LATENCY
        elif c.cost > budget.max_cost:
            reasons[c.name] = Reason.OVER_COST
        elif c.quality == 0:
            # It can only add size, cost and delay: leaving it out keeps the search space small too.
            reasons[c.name] = Reason.NO_GAIN
        else:
            fitting.append(c)
    exact = len(fitting) <= EXACT_LIMIT
    chosen = _exact(fitting, budget) if exact else _greedy(fitting, budget)
    for c in fitting:
        reasons[c.name] = _why(c, chosen, budget)
    in_order = tuple(c for c in candidates if c in chosen)
    return Selection(
        chosen=in_order,
        quality=subset_quality([c.quality for c in in_order]),
        latency_s=subset_latency([c.latency_s for c in in_order], budget),
        cost=sum(c.cost for c in in_order),
        reasons={name: reasons[name] for name in names},
        exact=exact,
    )


def _better(value: float, members: list[Candidate], best_value: float, best: list[Candidate]) -> bool:
    """Higher value wins; on a tie the smaller, then cheaper, then faster subset."""
    if value > best_value + TIE:
        return True
    if value < best_value - TIE:
        return False
    key = (len(members), sum(c.cost for c in members), max((c.latency_s for c in members), default=0.0))
    best_key = (len(best), sum(c.cost for c in best), max((c.latency_s for c in best), default=0.0))
    return key < best_key


def _exact(fitting: list[Candidate], budget: Budget) -> list[Candidate]:
    """Depth-first over subsets, best quality first, skipping every superset of an infeasible subset
    and every branch whose best completion cannot beat the best subset found so far."""
    order = sorted(fitting, key=lambda c: -c.quality)
    best: list[Candidate] = []
    best_value = 0.0

    def visit(start: int, members: list[Candidate], miss: float) -> None:
        nonlocal best, best_value
        if _better(1.0 - miss, members, best_value, best):
            best, best_value = list(members), 1.0 - miss
        slots = budget.max_experts - len(members)
        for i in range(start, len(order)):
            # The next `slots` candidates are the best still available: if even they cannot beat the
            # best subset, or cannot add anything to this one (a bigger equal subset never wins), stop.
            bound = 1.0 - miss * math.prod(1.0 - c.quality for c in order[i : i + slots])
            if bound < best_value - TIE or bound <= 1.0 - miss + TIE:
                return
            members.append(order[i])
            if feasible(members, budget):
                visit(i + 1, members, miss * (1.0 - order[i].quality))
            members.pop()

    visit(0, [], 1.0)
    return best


def _greedy(fitting: list[Candidate], budget: Budget) -> list[Candidate]:
    """Ratio greedy on the additive form of the objective, checked against the best single expert.

    1 - prod(1 - q_i) = 1 - exp(-sum w_i) with w_i = -log(1 - q_i), so the problem is a
    knapsack on w. Candidates go in order of w_i per share of the budget they use,
    max(cost_i / max_cost, 1 / max_experts), each kept if the subset stays feasible.
    As in the classic knapsack greedy, a second pass starts from the best single
    expert, and the better of the two passes wins.
    """

    def weight(c: Candidate) -> float:
        return math.inf if c.quality >= 1.0 else -math.log1p(-c.quality)

    def share(c: Candidate) -> float:
        # With a zero cost budget only free experts fit at all, and they use none of it.
        used = c.cost / budget.max_cost if budget.max_cost > 0 else 0.0
        return max(used, 1.0 / budget.max_experts)

    ordered = sorted(fitting, key=lambda c: (-weight(c) / share(c), -c.quality, c.cost, c.name))

    def fill(start: list[Candidate]) -> list[Candidate]:
        chosen = list(start)
        for c in ordered:
            if c not in chosen and feasible([*chosen, c], budget):
                chosen.append(c)
        return chosen

    by_ratio = fill([])
    if not fitting:
        return by_ratio
    from_best_single = fill([max(fitting, key=lambda c: c.quality)])
    quality = subset_quality([c.quality for c in by_ratio])
    return by_ratio if quality >= subset_quality([c.quality for c in from_best_single]) else from_best_single


def _why(candidate: Candidate, chosen: list[Candidate], budget: Budget) -> Reason:
    if candidate in chosen:
        return Reason.CHOSEN
    if len(chosen) >= budget.max_experts:
        return Reason.EXPERT_LIMIT
    together = [*chosen, candidate]
    if subset_latency([c.latency_s for c in together], budget) > budget.max_latency_s:
        return Reason.OVER_LATENCY_WITH_CHOSEN
    if sum(c.cost for c in together) > budget.max_cost:
        return Reason.OVER_COST_WITH_CHOSEN
    return Reason.NO_GAIN
