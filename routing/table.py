"""The cluster table: what the calibration taught about each model, cluster by cluster.

It holds counts, not accuracies, so that it round-trips through JSON exactly
and its version (a hash of the content) is the same on every peer that holds
the same table. Accuracies, ranks and overall accuracies are derived from the
counts, so they can never disagree with them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from core.envelope import DEFAULT_MAX_SKEW_S
from core.identity import Identity
from core.statements import Statement, sign

FORMAT = 1
STATEMENT_KIND = "routing-table"  # a node's signed word that it installed a table: {"version", "created_at"}


def replaces(precedence: tuple[float, str], held: ClusterTable | None) -> bool:
    """Whether a table of this (built at, version) replaces the one held: the newer wins, and the version
    breaks a tie, so every peer converges on the same table whatever order the tables reach it in.
    Peers judge an announced table by its precedence alone, before fetching it."""
    return held is None or precedence > held.precedence


def refusal(created_at: float, version: str, held: ClusterTable | None, now: float) -> str | None:
    """Why a table offered as (built at, version) is not taken, or None. A date past the clock skew is
    refused rather than believed: a table dated in the future would beat every honest one until then."""
    if not math.isfinite(created_at):
        return f"its date {created_at!r} is not a number"
    if created_at > now + DEFAULT_MAX_SKEW_S:
        ahead = created_at - now
        return f"it is dated {ahead:.0f} s ahead, past the {DEFAULT_MAX_SKEW_S:g} s clocks may differ by"
    if not replaces((created_at, version), held):
        return "it does not supersede the table held"
    return None


def vouch(identity: Identity, table: ClusterTable) -> Statement:
    """The installing node's signature over the table (its version covers the whole content)."""
    return sign(identity, STATEMENT_KIND, {"version": table.version, "created_at": table.created_at})


def vouches_for(statement: Statement, table: ClusterTable) -> bool:
    return statement.kind == STATEMENT_KIND and statement.body == {
        "version": table.version,
        "created_at": table.created_at,
    }


@dataclass(frozen=True, eq=False)
class ClusterTable:
    """Calibration results grouped by semantic cluster.

    `centroids` is Kxd with unit rows; `correct` and `counts` are KxM: how many
    of the calibration questions in cluster c model m answered right, out of how
    many it was asked. A count of 0 means "no calibration data", not "always wrong".
    """

    models: tuple[str, ...]
    centroids: np.ndarray
    correct: np.ndarray
    counts: np.ndarray
    # Centroids only mean something in the space of the model that embedded the questions.
    embedder: str = "all-MiniLM-L6-v2"
    # When it was built: of two tables the newer one wins everywhere (see `supersedes`).
    created_at: float = 0.0

    def __post_init__(self) -> None:
        centroids = np.array(self.centroids, dtype=np.float64)
        correct = np.array(self.correct, dtype=np.int64)
        counts = np.array(self.counts, dtype=np.int64)
        if not math.isfinite(self.created_at):
            raise ValueError(f"a cluster table's date must be a finite number, not {self.created_at!r}")
        if centroids.ndim != 2:
            raise ValueError("centroids must be a Kxd matrix")
        k, m = len(centroids), len(self.models)
        if len(set(self.models)) != m:
            raise ValueError("model names in a cluster table must be unique")
        if correct.shape != (k, m) or counts.shape != (k, m):
            raise ValueError(f"correct and counts must be {k}x{m}, got {correct.shape} and {counts.shape}")
        if (correct < 0).any() or (correct > counts).any():
            raise ValueError("each cell needs 0 <= correct <= counts")
        # Checked, not normalised here: renormalising would move the last bits and with them the version.
        if not np.allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-6):
            raise ValueError("centroids must be unit vectors")
        for array in (centroids, correct, counts):
            array.flags.writeable = False  # the version hash must keep describing the content
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "centroids", centroids)
        object.__setattr__(self, "correct", correct)
        object.__setattr__(self, "counts", counts)

    @property
    def num_clusters(self) -> int:
        return len(self.centroids)

    @property
    def dim(self) -> int:
        return self.centroids.shape[1] if self.num_clusters else 0

    def index(self, model: str) -> int | None:
        return self._index.get(model)

    @cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.models)}

    @cached_property
    def accuracy(self) -> np.ndarray:
        """KxM accuracy per cluster and model; NaN where the model has no data in the cluster."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.counts > 0, self.correct / self.counts, np.nan)

    @cached_property
    def rank(self) -> np.ndarray:
        """KxM rank of each model within its cluster, 0 = best; NaN where it has no data.

        Ties share the better rank (competition ranking: accuracies 0.9, 0.9, 0.5
        rank 0, 0, 2), so a model's rank is how many calibrated models beat it.
        """
        rank = np.full(self.accuracy.shape, np.nan)
        for c, row in enumerate(self.accuracy):
            known = ~np.isnan(row)
            ordered = np.sort(row[known])
            rank[c, known] = len(ordered) - np.searchsorted(ordered, row[known], side="right")
        return rank

    @cached_property
    def overall(self) -> np.ndarray:
        """Per model accuracy over all its calibration questions; NaN for a model with none."""
        correct, counts = self.correct.sum(axis=0), self.counts.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, correct / counts, np.nan)

    def _content(self) -> dict:
        return {
            "format": FORMAT,
            "embedder": self.embedder,
            "created_at": self.created_at,
            "models": list(self.models),
            "centroids": self.centroids.tolist(),
            "correct": self.correct.tolist(),
            "counts": self.counts.tolist(),
        }

    @cached_property
    def version(self) -> str:
        """A hash of the content: two peers route alike exactly when their versions match."""
        canonical = json.dumps(self._content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def precedence(self) -> tuple[float, str]:
        return (self.created_at, self.version)

    def supersedes(self, other: ClusterTable | None) -> bool:
        return replaces(self.precedence, other)

    def to_json(self) -> str:
        return json.dumps({**self._content(), "version": self.version})

    @classmethod
    def from_json(cls, text: str) -> ClusterTable:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"unsupported cluster table format {data.get('format')!r}")
        dim = len(data["centroids"][0]) if data["centroids"] else 0
        width = len(data["models"])
        table = cls(
            models=tuple(data["models"]),
            centroids=np.array(data["centroids"], dtype=np.float64).reshape(-1, dim),
            correct=np.array(data["correct"], dtype=np.int64).reshape(-1, width),
            counts=np.array(data["counts"], dtype=np.int64).reshape(-1, width),
            embedder=str(data["embedder"]),
            created_at=float(data["created_at"]),
        )
        if "version" in data and data["version"] != table.version:
            raise ValueError(f"cluster table version {data['version']} does not match its content")
        return table
