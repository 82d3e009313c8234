"""k-means on synthetic clusters, ranks by hand, and the table's JSON round trip."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from routing.clusters import (
    DEFAULT_CLUSTERS,
    MIN_QUESTIONS_PER_CLUSTER,
    CalibrationResult,
    build_table,
    cluster_count,
    kmeans,
)
from routing.scoring import score_models
from routing.table import ClusterTable


def blobs(seed: int = 1, per: int = 30, dim: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Three tight groups around orthogonal directions, shuffled."""
    rng = np.random.default_rng(seed)
    points = np.concatenate([np.eye(dim)[c] + 0.05 * rng.normal(size=(per, dim)) for c in range(3)])
    truth = np.repeat(np.arange(3), per)
    order = rng.permutation(len(points))
    return points[order], truth[order]


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return all((a[i] == a[j]) == (b[i] == b[j]) for i, j in itertools.combinations(range(len(a)), 2))


def test_well_separated_clusters_are_recovered() -> None:
    points, truth = blobs()
    for seed in range(5):
        centroids, labels = kmeans(points, 3, seed=seed)
        assert same_partition(labels, truth)
        assert np.linalg.norm(centroids, axis=1) == pytest.approx(np.ones(3))


def test_fixed_seed_is_deterministic() -> None:
    points, _ = blobs()
    first, second = kmeans(points, 5, seed=3), kmeans(points, 5, seed=3)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_every_cluster_keeps_a_member() -> None:
    points, _ = blobs(per=5)
    _, labels = kmeans(points, 12, seed=0)
    assert set(labels.tolist()) == set(range(12))


def test_k_out_of_range() -> None:
    with pytest.raises(ValueError):
        kmeans(np.ones((4, 3)), 2)  # one distinct point
    with pytest.raises(ValueError):
        kmeans(np.eye(3), 0)


def test_build_table_counts_and_routes_by_topic() -> None:
    points, truth = blobs()
    # "math" is right on group 0 only, "code" on group 1 only, "chat" half the time everywhere.
    results = [
        CalibrationResult(i, model, correct)
        for i, group in enumerate(truth.tolist())
        for model, correct in (("math", group == 0), ("code", group == 1), ("chat", i % 2 == 0))
    ]
    table = build_table(points, reversed(results), k=3)
    assert table.models == ("chat", "code", "math")
    assert table.counts.sum() == len(results)
    assert table.overall[table.index("math")] == pytest.approx(1 / 3)
    for group, expert in ((0, "math"), (1, "code")):
        query = np.eye(8)[group]
        assert score_models(query, table)[0].name == expert
    assert build_table(points, results, k=3).version == table.version  # arrival order does not matter


def test_ranks_by_hand_with_ties_and_missing_models() -> None:
    table = ClusterTable(
        ("a", "b", "c", "d"),
        np.eye(2),
        correct=[[9, 9, 5, 0], [1, 2, 3, 0]],
        counts=[[10, 10, 10, 0], [10, 10, 10, 5]],
    )
    nan = np.nan
    # Cluster 0: a and b tie at 0.9 (both rank 0), c 0.5 is beaten by two; d has no data.
    # Cluster 1: c 0.3 > b 0.2 > a 0.1 > d 0.0.
    assert np.array_equal(table.rank, [[0, 0, 2, nan], [2, 1, 0, 3]], equal_nan=True)
    assert table.overall == pytest.approx([0.5, 0.55, 0.4, 0.0])


def test_json_round_trip_preserves_the_version() -> None:
    points, truth = blobs()
    results = [
        CalibrationResult(i, m, bool((i + len(m)) % 3)) for i in range(len(truth)) for m in ("x", "yy")
    ]
    table = build_table(points, results, k=4, embedder="test-embedder", created_at=1234.5)
    again = ClusterTable.from_json(table.to_json())
    assert again.version == table.version
    assert (again.embedder, again.created_at) == ("test-embedder", 1234.5)
    assert np.array_equal(again.centroids, table.centroids)
    assert np.array_equal(again.counts, table.counts) and again.models == table.models


def test_version_follows_content_and_tampering_is_caught() -> None:
    table = ClusterTable(("a",), np.eye(2), [[1], [2]], [[2], [2]])
    assert ClusterTable(("a",), np.eye(2), [[1], [1]], [[2], [2]]).version != table.version
    tampered = table.to_json().replace('"correct": [[1], [2]]', '"correct": [[2], [2]]')
    assert tampered != table.to_json()
    with pytest.raises(ValueError):
        ClusterTable.from_json(tampered)


def test_the_newer_table_supersedes_and_a_tie_breaks_by_version() -> None:
    old = ClusterTable(("a",), np.eye(2), [[1], [2]], [[2], [2]], created_at=10.0)
    new = ClusterTable(("a",), np.eye(2), [[0], [2]], [[2], [2]], created_at=20.0)
    assert new.supersedes(old) and not old.supersedes(new)
    assert old.supersedes(None)
    assert not old.supersedes(old)
    twin = ClusterTable(("a",), np.eye(2), [[2], [2]], [[2], [2]], created_at=10.0)
    # Same time, different content: exactly one of the two wins, the same one on every peer.
    assert twin.supersedes(old) != old.supersedes(twin)


def test_table_rejects_inconsistent_content() -> None:
    with pytest.raises(ValueError):
        ClusterTable(("a",), np.eye(2), [[3], [0]], [[2], [1]])  # more right than asked
    with pytest.raises(ValueError):
        ClusterTable(("a",), 2 * np.eye(2), [[0], [0]], [[1], [1]])  # not unit centroids
    with pytest.raises(ValueError):
        ClusterTable(("a", "a"), np.eye(2), np.zeros((2, 2)), np.ones((2, 2)))


def test_cluster_count_keeps_a_few_questions_per_cluster() -> None:
    assert cluster_count(1000) == DEFAULT_CLUSTERS
    assert cluster_count(12) == 12 // MIN_QUESTIONS_PER_CLUSTER
    assert cluster_count(2) == 1
    assert cluster_count(12, requested=64) == 12  # never more clusters than questions
    assert cluster_count(500, requested=64) == 64
    with pytest.raises(ValueError):
        cluster_count(10, requested=0)
