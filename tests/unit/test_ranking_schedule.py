"""Pair schedules (sizes, both orders, no self pairs) and the assignment of comparisons to judges."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from ranking.schedule import Comparison, assign, schedule


def pairs(comparisons: tuple[Comparison, ...]) -> set[frozenset[int]]:
    return {frozenset((c.first, c.second)) for c in comparisons}


@pytest.mark.parametrize(("n", "size"), [(0, 0), (1, 0), (2, 2), (3, 6), (4, 12), (5, 20), (6, 18), (7, 28)])
def test_sparse_schedule_sizes(n: int, size: int) -> None:
    # Up to five candidates the ring's neighbours and opposites are all pairs: n(n-1). Beyond, 3n or 4n.
    assert len(schedule(n, seed=1)) == size


@pytest.mark.parametrize("n", [6, 8, 9, 12, 17, 40])
def test_sparse_schedule_is_about_3n_each_pair_both_ways(n: int) -> None:
    comparisons = schedule(n, seed=n)
    assert len(comparisons) == (3 * n if n % 2 == 0 else 4 * n)
    assert len(set(comparisons)) == len(comparisons)
    assert all(c.first != c.second and {c.first, c.second} <= set(range(n)) for c in comparisons)
    assert all(Comparison(c.second, c.first) in comparisons for c in comparisons)
    # Every candidate meets the same number of others, and the two orders of a pair are neighbours.
    degree = Counter(i for c in comparisons for i in (c.first, c.second))
    assert set(degree.values()) == {6 if n % 2 == 0 else 8}
    assert all(
        comparisons[k + 1] == Comparison(comparisons[k].second, comparisons[k].first)
        for k in range(0, len(comparisons), 2)
    )


def ring_pairs(ring: list[int]) -> set[frozenset[int]]:
    n = len(ring)
    return {frozenset((ring[k], ring[(k + step) % n])) for k in range(n) for step in (1, n // 2)}


def test_sparse_schedule_of_eight_is_a_shuffled_ring_with_its_diameters() -> None:
    scheduled = pairs(schedule(8, seed="round 1"))
    rings = [
        [0, *rest] for rest in itertools.permutations(range(1, 8)) if ring_pairs([0, *rest]) == scheduled
    ]
    assert rings  # some ring order gives exactly these pairs
    assert scheduled != ring_pairs(list(range(8)))  # and it is not the order the candidates came in


def test_schedule_is_deterministic_given_the_seed() -> None:
    assert schedule(8, seed="round 1") == schedule(8, seed="round 1")
    assert pairs(schedule(8, seed="round 2")) != pairs(schedule(8, seed="round 1"))  # who meets whom


def test_full_schedule_is_every_ordered_pair() -> None:
    comparisons = schedule(6, seed=3, full=True)
    assert len(comparisons) == 6 * 5
    assert set(comparisons) == {Comparison(i, j) for i, j in itertools.permutations(range(6), 2)}


def test_schedule_rejects_a_negative_count() -> None:
    with pytest.raises(ValueError, match="negative"):
        schedule(-1, seed=0)


def check(assignment_tasks: dict[str, tuple[Comparison, ...]], authors: list[str]) -> None:
    for judge, tasks in assignment_tasks.items():
        assert all(judge not in (authors[c.first], authors[c.second]) for c in tasks), judge


@pytest.mark.parametrize(
    ("n", "extra", "full"),
    [
        (3, 0, False),
        (4, 0, False),
        (4, 0, True),
        (6, 0, False),
        (7, 2, False),
        (9, 1, True),
        (12, 0, False),
        (25, 3, False),
    ],
)
def test_assignment_spreads_load_within_one_and_never_gives_a_judge_its_own_answer(
    n: int, extra: int, full: bool
) -> None:
    authors = [f"peer{i}" for i in range(n)]
    judges = authors + [f"judge{i}" for i in range(extra)]
    for seed in range(10):
        comparisons = schedule(n, seed=seed, full=full)
        assignment = assign(comparisons, judges, authors, seed=seed)
        check(assignment.tasks, authors)
        assert assignment.unassigned == ()
        assert Counter(c for tasks in assignment.tasks.values() for c in tasks) == Counter(comparisons)
        loads = [len(tasks) for tasks in assignment.tasks.values()]
        assert len(loads) == len(judges)
        assert max(loads) - min(loads) <= 1, loads


def test_assignment_routes_around_a_corner_greedy_paints_itself_into() -> None:
    # Four candidates, their four authors judging: every comparison has two eligible judges, and
    # taking the comparisons in order, each to its least loaded eligible judge, leaves loads 4, 4, 3, 1.
    authors = ["p0", "p1", "p2", "p3"]
    comparisons = schedule(4, seed=0, full=True)
    assignment = assign(comparisons, authors, authors, seed=0)
    check(assignment.tasks, authors)
    assert sorted(len(t) for t in assignment.tasks.values()) == [3, 3, 3, 3]


def test_assignment_is_deterministic_given_the_seed() -> None:
    authors = [f"p{i}" for i in range(8)]
    comparisons = schedule(8, seed=5)
    first = assign(comparisons, authors, authors, seed=5)
    assert assign(comparisons, list(reversed(authors)), authors, seed=5) == first
    assert any(assign(comparisons, authors, authors, seed=s) != first for s in range(6, 12))


def test_comparisons_no_judge_may_take_are_reported() -> None:
    # Two candidates by the only two judges: each comparison holds each judge's own answer.
    comparisons = schedule(2, seed=0)
    assignment = assign(comparisons, ["a", "b"], ["a", "b"], seed=0)
    assert assignment.unassigned == comparisons
    assert assignment.tasks == {"a": (), "b": ()}
    # A third judge takes them both.
    assignment = assign(comparisons, ["a", "b", "c"], ["a", "b"], seed=0)
    assert assignment.unassigned == ()
    assert assignment.tasks["c"] == comparisons


def test_a_judge_that_wrote_several_answers_gets_only_the_pairs_without_them() -> None:
    # x wrote 0, 1, 2; y wrote 3; z wrote 4. Five candidates: every ordered pair, 20 comparisons.
    # x may take only 3-4 and 4-3; x-y pairs (6) only z, x-z pairs (6) only y; the 6 among x's own
    # answers go to y or z, three each at best: loads 2, 9, 9.
    authors = ["x", "x", "x", "y", "z"]
    assignment = assign(schedule(5, seed=2), ["x", "y", "z"], authors, seed=2)
    check(assignment.tasks, authors)
    assert assignment.unassigned == ()
    assert {j: len(t) for j, t in assignment.tasks.items()} == {"x": 2, "y": 9, "z": 9}
