"""Which pairs of candidates are judged, and by whom.

Judging every ordered pair takes n(n-1) comparisons. The sparse schedule puts
the candidates on a ring in a seeded random order and compares each with its
neighbour (i, i+1) and with the one across the ring (i, i+n//2): every
candidate meets the same number of others, and any two are a few steps apart
in the comparison graph, which is what Bradley-Terry needs to place them on one
scale. Each pair is asked in both orders, so the judges' leaning towards the
answer they see first (or second) falls on both sides alike. That makes 3n comparisons
for even n and 4n for odd n, where the cross pairs do not fold onto each other;
up to five candidates the sparse schedule is the full one.

The order is shuffled from a seed every peer of a round can derive, so all
compute the same schedule, and no candidate can arrange whom it is compared with.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Seed = int | str | bytes


@dataclass(frozen=True, slots=True)
class Comparison:
    """One question to a judge: candidate `first` is shown as answer A, `second` as answer B."""

    first: int
    second: int


@dataclass(frozen=True, slots=True)
class Assignment:
    """Each judge's comparisons (every judge has an entry, maybe empty), in schedule order, and the
    comparisons no judge may take because every judge wrote one of the two answers."""

    tasks: dict[str, tuple[Comparison, ...]]
    unassigned: tuple[Comparison, ...]


def schedule(n: int, seed: Seed, *, full: bool = False) -> tuple[Comparison, ...]:
    """The comparisons for n candidates (indices 0..n-1): the sparse schedule, or with `full` every
    ordered pair. The two orders of a pair are listed one after the other."""
    if n < 0:
        raise ValueError(f"the number of candidates must not be negative, got {n}")
    ring = list(range(n))
    random.Random(seed).shuffle(ring)
    if full:
        steps: Iterable[tuple[int, int]] = itertools.combinations(range(n), 2)
    else:
        steps = ((i, (i + step) % n) for i in range(n) for step in (1, n // 2))
    seen: set[frozenset[int]] = set()
    comparisons: list[Comparison] = []
    for i, j in steps:
        pair = frozenset((i, j))
        if i != j and pair not in seen:  # for small n a neighbour is also the one across
            seen.add(pair)
            comparisons += [Comparison(ring[i], ring[j]), Comparison(ring[j], ring[i])]
    return tuple(comparisons)


def assign(
    comparisons: Sequence[Comparison], judges: Iterable[str], authors: Sequence[str], seed: Seed
) -> Assignment:
    """Spread the comparisons over the judges as evenly as their eligibility allows; `authors[c]` is the
    peer that wrote candidate c, and a judge never compares a pair holding its own answer.

    Greedy assignment (each comparison to its least loaded eligible judge) can
    paint itself into a corner: the judges left with room wrote the answers of
    the comparisons left over. So each comparison goes to the least loaded judge
    it can reach by an alternating path (it takes a comparison from an eligible
    judge, who hands one of its own to another judge eligible for that, and so
    on), shifting one comparison along each step. This is Harvey, Ladner, Lovász
    and Tamir's semi-matching algorithm ("Semi-matchings for bipartite graphs
    and load balancing", 2006); its loads are optimal in every norm, so within
    one of each other whenever any assignment achieves that. Ties go to the
    judge found first, in a seeded order of the judges.
    """
    pool = sorted(set(judges))  # so that peers listing the judges in different orders agree
    random.Random(seed).shuffle(pool)
    eligible = [[j for j in pool if j not in (authors[c.first], authors[c.second])] for c in comparisons]
    taken: dict[str, set[int]] = {j: set() for j in pool}
    unassigned: list[int] = []
    for k in range(len(comparisons)):
        if not eligible[k]:
            unassigned.append(k)
            continue
        judge, parent = _lightest_reachable(k, eligible, taken)
        while True:  # shift one comparison along each step of the path back to k
            giver, moved = parent[judge]
            taken[judge].add(moved)
            if giver is None:
                break
            taken[giver].remove(moved)
            judge = giver
    return Assignment(
        tasks={j: tuple(comparisons[k] for k in sorted(ks)) for j, ks in taken.items()},
        unassigned=tuple(comparisons[k] for k in unassigned),
    )


def _lightest_reachable(
    k: int, eligible: Sequence[Sequence[str]], taken: dict[str, set[int]]
) -> tuple[str, dict[str, tuple[str | None, int]]]:
    """The first least loaded judge found breadth-first from comparison k, and the search tree: parent[j]
    is the judge that would hand j a comparison, and which (None: j takes k itself). No judge is less
    loaded than the lightest of all, so the search stops at the first such one it finds."""
    lightest = min(len(held) for held in taken.values())
    parent: dict[str, tuple[str | None, int]] = {}
    queue: list[str] = []

    def reach(judge: str, giver: str | None, moved: int) -> bool:
        parent[judge] = (giver, moved)
        queue.append(judge)
        return len(taken[judge]) == lightest

    for judge in eligible[k]:
        if reach(judge, None, k):
            return judge, parent
    for giver in queue:  # grows while it is walked
        for held in sorted(taken[giver]):
            for judge in eligible[held]:
                if judge not in parent and reach(judge, giver, held):
                    return judge, parent
    return min(queue, key=lambda j: len(taken[j])), parent
