"""Avengers scoring: how well each model should answer a question, from the clusters it falls near.

For the `top_k` clusters nearest the query, d_c = 1 - cos(centroid_c, q) and
p_c = softmax(-β·d_c); a model scores Σ_c p_c / (rank_{m,c} + 0.1), with rank 0
the best model of the cluster, and its predicted quality is Σ_c p_c · accuracy_{m,c}.
The score orders the models (the Avengers ranking); the quality is a probability
of being right, which is what the budgeted selection needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from routing.table import ClusterTable

DEFAULT_TOP_K = 3
DEFAULT_BETA = 4.0
RANK_OFFSET = 0.1
# A model nobody has calibrated, in a table with no overall accuracy either, is a coin flip.
NEUTRAL_ACCURACY = 0.5

Basis = Literal["clusters", "overall"]


@dataclass(frozen=True, slots=True)
class ModelScore:
    """One model's standing for one query.

    `clusters` lists the (cluster index, p_c) pairs that contributed, nearest first;
    it is empty when `basis` is "overall" (no clusters, or a query that could not
    be placed). `calibrated` is false when the model's figures are all prior.
    """

    name: str
    score: float
    quality: float
    clusters: tuple[tuple[int, float], ...]
    basis: Basis
    calibrated: bool


def score_models(
    query: np.ndarray,
    table: ClusterTable,
    models: Sequence[str] | None = None,
    *,
    top_k: int = DEFAULT_TOP_K,
    beta: float = DEFAULT_BETA,
    prior_accuracy: float | None = None,
) -> list[ModelScore]:
    """Score `models` (default: the table's) for `query`, best first.

    A model without data in a cluster ranks just below the cluster's last
    calibrated model and is given `prior_accuracy` there (default: the mean
    accuracy of the calibrated models in that cluster), so it can still be
    chosen, never with a zero score. Ties break by quality, then by name.
    """
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    names = list(table.models if models is None else models)
    if len(set(names)) != len(names):
        raise ValueError("model names must be unique")
    columns = np.array([-1 if (c := table.index(name)) is None else c for name in names], dtype=np.int64)
    asked = table.counts.sum(axis=0)
    calibrated = [c >= 0 and asked[c] > 0 for c in columns]
    q = _unit(query, table.dim)
    if table.num_clusters == 0 or q is None:
        scores = quality = _overall(table, columns, prior_accuracy)
        nearest, p = np.empty(0, dtype=np.int64), np.empty(0)
        basis: Basis = "overall"
    else:
        distance = 1.0 - table.centroids @ q
        # A stable sort makes equidistant clusters break by index, so every peer picks the same ones.
        nearest = np.argsort(distance, kind="stable")[:top_k]
        logits = -beta * distance[nearest]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        rank, accuracy = _with_priors(table, nearest, columns, prior_accuracy)
        scores = p @ (1.0 / (rank + RANK_OFFSET))
        # p sums to 1 only up to rounding: a perfect record must not come out as 1.0000000000000002.
        quality = np.clip(p @ accuracy, 0.0, 1.0)
        basis = "clusters"
    contributions = tuple(zip(nearest.tolist(), p.tolist(), strict=True))
    results = [
        ModelScore(name, float(s), float(qu), contributions, basis, bool(cal))
        for name, s, qu, cal in zip(names, scores, quality, calibrated, strict=True)
    ]
    results.sort(key=lambda r: (-r.score, -r.quality, r.name))
    return results


def _unit(query: np.ndarray, dim: int) -> np.ndarray | None:
    """The query as a unit vector, or None if it cannot be placed among the clusters."""
    q = np.asarray(query, dtype=np.float64).reshape(-1)
    norm = np.linalg.norm(q)
    if q.shape != (dim,) or not np.isfinite(q).all() or norm == 0:
        return None
    return q / norm


def _with_priors(
    table: ClusterTable, clusters: np.ndarray, columns: np.ndarray, prior_accuracy: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rank and accuracy (clusters x models) with the priors filled in where a model has no data."""
    known_rank = table.rank[clusters]
    known_accuracy = table.accuracy[clusters]
    # Just below the last calibrated model: ranks are "how many calibrated models beat you".
    prior_rank = (~np.isnan(known_accuracy)).sum(axis=1)
    if prior_accuracy is not None:
        fill = np.full(len(clusters), prior_accuracy)
    else:
        # The mean of the calibrated models in the cluster; the table's mean where nobody is calibrated.
        total = np.nansum(known_accuracy, axis=1)
        fallback = np.full(len(clusters), _table_mean(table))
        fill = np.divide(total, prior_rank, out=fallback, where=prior_rank > 0)
    if not table.models:  # clusters without a single calibrated model: priors everywhere
        shape = (len(clusters), len(columns))
        return np.broadcast_to(prior_rank[:, None], shape), np.broadcast_to(fill[:, None], shape)
    # Column -1 (a model the table never saw) reads some real column; `missing` then discards it.
    missing = np.isnan(known_accuracy[:, columns]) | (columns < 0)
    rank = np.where(missing, prior_rank[:, None], known_rank[:, columns])
    accuracy = np.where(missing, fill[:, None], known_accuracy[:, columns])
    return rank, accuracy


def _overall(table: ClusterTable, columns: np.ndarray, prior_accuracy: float | None) -> np.ndarray:
    prior = _table_mean(table) if prior_accuracy is None else prior_accuracy
    if not table.models:
        return np.full(len(columns), prior)
    values = np.where(columns < 0, np.nan, table.overall[columns])
    return np.where(np.isnan(values), prior, values)


def _table_mean(table: ClusterTable) -> float:
    known = table.overall[~np.isnan(table.overall)]
    return float(known.mean()) if known.size else NEUTRAL_ACCURACY
