"""Avengers scoring against hand-computed cases and a naive per-model reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from routing.scoring import ModelScore, score_models
from routing.table import ClusterTable


def two_clusters() -> ClusterTable:
    # Cluster 0 (x axis): a 9/10, b 5/10. Cluster 1 (y axis): a 1/10, b 8/10. c never calibrated.
    return ClusterTable(("a", "b", "c"), np.eye(2), [[9, 5, 0], [1, 8, 0]], [[10, 10, 0], [10, 10, 0]])


def by_name(results: list[ModelScore]) -> dict[str, ModelScore]:
    return {r.name: r for r in results}


def test_hand_computed_two_clusters() -> None:
    results = by_name(score_models(np.array([1.0, 0.0]), two_clusters(), ["a", "b"], top_k=2, beta=4.0))
    # d = (0, 1), so p = softmax(0, -4).
    p0, p1 = 1 / (1 + math.exp(-4)), math.exp(-4) / (1 + math.exp(-4))
    assert [c for c, _ in results["a"].clusters] == [0, 1]
    assert [p for _, p in results["a"].clusters] == pytest.approx([p0, p1])
    assert results["a"].score == pytest.approx(p0 / 0.1 + p1 / 1.1)
    assert results["b"].score == pytest.approx(p0 / 1.1 + p1 / 0.1)
    assert results["a"].quality == pytest.approx(p0 * 0.9 + p1 * 0.1)
    assert results["b"].quality == pytest.approx(p0 * 0.5 + p1 * 0.8)
    assert results["a"].basis == "clusters"


def test_rank_zero_is_the_best_model_of_the_cluster() -> None:
    results = score_models(np.array([0.0, 1.0]), two_clusters(), ["a", "b"], top_k=1)
    assert [r.name for r in results] == ["b", "a"]
    assert results[0].score == pytest.approx(1 / 0.1)
    assert results[1].score == pytest.approx(1 / 1.1)


def test_beta_zero_weighs_the_nearest_clusters_alike() -> None:
    results = score_models(np.array([1.0, 0.2]), two_clusters(), ["a"], top_k=2, beta=0.0)
    assert [p for _, p in results[0].clusters] == pytest.approx([0.5, 0.5])


def test_uncalibrated_model_ranks_just_below_the_last_with_the_cluster_mean() -> None:
    results = by_name(score_models(np.array([1.0, 0.0]), two_clusters(), ["a", "b", "c", "new"], top_k=1))
    for name in ("c", "new"):
        assert results[name].score == pytest.approx(1 / 2.1)  # two calibrated models, so rank 2
        assert results[name].quality == pytest.approx((0.9 + 0.5) / 2)
        assert not results[name].calibrated
    assert results["a"].calibrated


def test_explicit_prior_accuracy() -> None:
    query = np.array([1.0, 0.0])
    results = by_name(score_models(query, two_clusters(), ["new"], top_k=1, prior_accuracy=0.2))
    assert results["new"].quality == pytest.approx(0.2)
    assert results["new"].score > 0


def test_model_missing_from_one_cluster_gets_the_prior_there_only() -> None:
    table = ClusterTable(("a", "b"), np.eye(2), [[3, 1], [2, 0]], [[4, 4], [4, 0]])
    results = by_name(score_models(np.array([1.0, 1.0]), table, top_k=2))
    # Equidistant query: p = (0.5, 0.5). In cluster 1 only a is calibrated, so b takes rank 1, accuracy 0.5.
    assert results["b"].score == pytest.approx(0.5 / 1.1 + 0.5 / 1.1)
    assert results["b"].quality == pytest.approx(0.5 * 0.25 + 0.5 * 0.5)
    assert results["a"].score == pytest.approx(0.5 / 0.1 + 0.5 / 0.1)


@pytest.mark.parametrize(
    "query",
    [np.zeros(2), np.array([np.nan, 1.0]), np.array([1.0, 0.0, 0.0]), np.array([np.inf, 0.0])],
)
def test_unusable_query_falls_back_to_overall_accuracy(query: np.ndarray) -> None:
    results = score_models(query, two_clusters(), ["a", "b", "new"])
    assert [(r.name, r.basis, r.clusters) for r in results] == [
        ("b", "overall", ()),
        ("new", "overall", ()),
        ("a", "overall", ()),
    ]
    assert [r.score for r in results] == pytest.approx([0.65, 0.575, 0.5])  # new: mean of 0.65 and 0.5


def test_table_without_clusters_falls_back_and_uncalibrated_is_neutral() -> None:
    table = ClusterTable(("a",), np.empty((0, 4)), np.empty((0, 1)), np.empty((0, 1)))
    results = score_models(np.ones(4), table, ["a", "b"])
    assert [(r.basis, r.score) for r in results] == [("overall", 0.5), ("overall", 0.5)]
    assert [r.name for r in results] == ["a", "b"]  # equal score and quality: by name


def test_ties_break_by_quality_then_name() -> None:
    table = ClusterTable(("z", "y", "x"), np.eye(2), [[1, 1, 1], [2, 1, 1]], [[2, 2, 2], [2, 2, 2]])
    # Cluster 1 ranks z first (1.0) and y, x tied (0.5). With top_k=1 on cluster 0 all three tie on score.
    results = score_models(np.array([1.0, 0.0]), table, top_k=1)
    assert [r.name for r in results] == ["x", "y", "z"]
    results = score_models(np.array([0.0, 1.0]), table, top_k=1)
    assert [r.name for r in results] == ["z", "x", "y"]


def test_equidistant_clusters_break_by_index() -> None:
    table = ClusterTable(("a",), np.eye(3), [[1], [1], [1]], [[1], [1], [1]])
    results = score_models(np.array([1.0, 1.0, 1.0]), table, top_k=2)
    assert [c for c, _ in results[0].clusters] == [0, 1]


def reference(
    query: np.ndarray, table: ClusterTable, top_k: int, beta: float
) -> dict[str, tuple[float, float]]:
    """The formula written out cluster by cluster, model by model."""
    q = query / np.linalg.norm(query)
    distances = sorted((1 - float(table.centroids[c] @ q), c) for c in range(table.num_clusters))[:top_k]
    weights = [math.exp(-beta * d) for d, _ in distances]
    p = [w / sum(weights) for w in weights]
    out = {}
    for m, name in enumerate(table.models):
        score = quality = 0.0
        for (_, c), pc in zip(distances, p, strict=True):
            accuracy = table.correct[c, m] / table.counts[c, m]
            rank = sum(table.correct[c, o] / table.counts[c, o] > accuracy for o in range(len(table.models)))
            score += pc / (rank + 0.1)
            quality += pc * accuracy
        out[name] = (score, quality)
    return out


def test_matches_the_reference_on_random_tables() -> None:
    rng = np.random.default_rng(7)
    for _ in range(30):
        k, m, d = rng.integers(1, 8), rng.integers(1, 6), rng.integers(2, 6)
        centroids = rng.normal(size=(k, d))
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        counts = rng.integers(1, 6, size=(k, m))
        table = ClusterTable(tuple(f"m{i}" for i in range(m)), centroids, rng.integers(0, counts + 1), counts)
        query, top_k, beta = rng.normal(size=d), int(rng.integers(1, 5)), float(rng.uniform(0, 8))
        results = score_models(query, table, top_k=top_k, beta=beta)
        expected = reference(query, table, top_k, beta)
        for r in results:
            assert (r.score, r.quality) == pytest.approx(expected[r.name])
        assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


def test_a_perfect_record_is_a_quality_of_exactly_one() -> None:
    # Softmax weights sum to 1 only up to rounding; quality must still be a probability.
    rng = np.random.default_rng(3)
    centroids = rng.normal(size=(64, 16))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    table = ClusterTable(("a",), centroids, np.full((64, 1), 5), np.full((64, 1), 5))
    for _ in range(200):
        assert score_models(rng.normal(size=16), table)[0].quality <= 1.0


def test_clusters_without_any_model_give_every_model_the_prior() -> None:
    empty = ClusterTable((), np.eye(2), np.empty((2, 0)), np.empty((2, 0)))
    scores = score_models(np.array([1.0, 0.0]), empty, ["x", "y"], prior_accuracy=0.3)
    assert [(s.quality, s.calibrated, s.basis) for s in scores] == [(0.3, False, "clusters")] * 2
