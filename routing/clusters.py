"""Spherical k-means over calibration embeddings, and the cluster table built from its clusters.

Embeddings are compared by cosine, so the points and centroids are unit
vectors and a point joins the centroid with the largest dot product. The
seed is fixed so that every peer that clusters the same calibration set
builds the same table, and so the same version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from routing.table import ClusterTable

DEFAULT_SEED = 0
MAX_ITERATIONS = 100
# From the sweep in `python -m bench.routing` (see the README's routing section).
DEFAULT_CLUSTERS = 16
# Fewer questions than this per cluster and its accuracies are mostly noise.
MIN_QUESTIONS_PER_CLUSTER = 4


@dataclass(frozen=True, slots=True)
class CalibrationResult:
    """One model's verdict on one calibration question; `item` is the question's row in the embeddings."""

    item: int
    model: str
    correct: bool


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not (np.isfinite(vectors).all() and (norms > 0).all()):
        raise ValueError("embeddings must be finite and non-zero")
    return vectors / norms


def cluster_count(questions: int, requested: int | None = None) -> int:
    """K for `questions` calibration questions: as asked (at most one cluster per question), else the
    default, lowered so that each cluster holds a few questions on average."""
    if requested is not None:
        if requested < 1:
            raise ValueError("the number of clusters must be at least 1")
        return min(requested, questions)
    return max(1, min(DEFAULT_CLUSTERS, questions // MIN_QUESTIONS_PER_CLUSTER))


def kmeans(
    points: np.ndarray, k: int, *, seed: int = DEFAULT_SEED, max_iterations: int = MAX_ITERATIONS
) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (k x d, unit rows) and each point's cluster, by k-means++ seeding and Lloyd iterations."""
    points = normalise(points)
    if not 1 <= k <= len(np.unique(points, axis=0)):
        raise ValueError(f"k must lie between 1 and the number of distinct points, got {k}")
    rng = np.random.default_rng(seed)
    centroids = _plus_plus(points, k, rng)
    labels = np.full(len(points), -1)
    for _ in range(max_iterations):
        similarity = points @ centroids.T
        new_labels = similarity.argmax(axis=1)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for c in range(k):
            members = points[labels == c]
            if len(members):
                mean = members.sum(axis=0)
                norm = np.linalg.norm(mean)
                # Opposite members can cancel out: keep the old centroid rather than divide by zero.
                if norm > 0:
                    centroids[c] = mean / norm
            else:
                # An empty cluster takes the point its own centroid fits worst, so k clusters stay k.
                fit = similarity[np.arange(len(points)), labels]
                worst = fit.argmin()
                centroids[c] = points[worst]
                labels[worst] = c
                similarity[worst] = np.inf  # so a second empty cluster takes a different point
    return centroids, labels


def _plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++: each new centroid is drawn with probability proportional to its squared cosine distance."""
    centroids = [points[rng.integers(len(points))]]
    distance = 1.0 - points @ centroids[0]
    for _ in range(1, k):
        weight = np.clip(distance, 0.0, None) ** 2
        chosen = points[rng.choice(len(points), p=weight / weight.sum())]
        centroids.append(chosen)
        distance = np.minimum(distance, 1.0 - points @ chosen)
    return np.array(centroids)


def build_table(
    embeddings: np.ndarray,
    results: Iterable[CalibrationResult],
    *,
    k: int,
    seed: int = DEFAULT_SEED,
    embedder: str = "all-MiniLM-L6-v2",
    created_at: float = 0.0,
) -> ClusterTable:
    """Cluster the calibration questions and count, per cluster, how often each model was right.

    Models are listed in sorted order so the table (and its version) does not
    depend on the order the results arrived in.
    """
    results = list(results)
    centroids, labels = kmeans(embeddings, k, seed=seed)
    models = tuple(sorted({r.model for r in results}))
    column = {name: j for j, name in enumerate(models)}
    correct = np.zeros((k, len(models)), dtype=np.int64)
    counts = np.zeros_like(correct)
    for r in results:
        if not 0 <= r.item < len(labels):
            raise ValueError(f"calibration result for item {r.item}, but there are {len(labels)} embeddings")
        counts[labels[r.item], column[r.model]] += 1
        correct[labels[r.item], column[r.model]] += r.correct
    return ClusterTable(models, centroids, correct, counts, embedder=embedder, created_at=created_at)
