"""The meta-learner: from a node's own history, which acceleration method makes a request fastest.

Per (model, backend) it predicts each method's log speed (output tokens/s) on
a task from the task's standardised feature vector z, in two parts.

A ridge regression over a piecewise-linear basis x(z) (z, and hinges
max(0, z_j - knot) at quantiles of each feature): log speed = x·(b + g_m),
with g fixed at 0 for the default method. b is how fast the task goes
whatever the method, g_m how much faster method m makes it and how that
varies with the task. Modelling the speed-up rather than the speed is what
selects well: most of the variation in speed is the task's own (its length,
the load), the same for every method, and a regressor of raw speed (the
GradientBoosting baseline) spends itself on that. Each g_m is shrunk toward
0. Its intercept lightly: a method with little data is predicted as the
default times its mean speed-up, and one never observed exactly as the
default (a prior speed-up of 1, which ties lose, so it is never picked on
prediction but is what exploration tries first). Its dependence on each
feature by a penalty chosen by cross-validation: a speed-up varies only with
the features it is seen to vary with, so a method that follows the default
everywhere shares the default's fit, noise included, and methods a few per
cent apart stay in their order.

A kernel nearest-neighbours correction, for what is not additive ("on tasks
like this one, m beat the regression by more than the default did"): the
kernel means of m's and of the default's residuals over recent tasks,
weights exp(-d²/2h²) with d measured along the features m's speed-up varies
with, each shrunk toward 0 by a prior weight of KERNEL_PRIOR; m gets their
difference, so what the regression misses for every method alike cancels.
Its bandwidth h, or none, is chosen per method by cross-validation.

A history under MIN_FOR_TUNING records is not tuned: strong penalties, which
leave per-method mean speed-ups, and no correction. Nor is one on which the
tuned model picks worse than that plain one on tasks held out by
cross-validation: on a small, noisy history tuning fits the noise.

The choice is the fastest predicted method, the default on a tie. It explores
as an epsilon-greedy bandit: with probability exploration / sqrt(1 + n) it
takes instead the least-tried other method, n being that method's runs on
tasks of this kind (`TaskFeatures.kind`), so exploration fades as every
method gets tried. `fit` is given the whole history each time, and all of it
is deterministic given the seed and the data.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from accel.features import FEATURE_NAMES, TaskFeatures
from accel.history import Record

DIMENSIONS = len(FEATURE_NAMES)
FORMAT = 1  # the saved file's format
# Ridge penalties on the basis: a method's speed-up needs about one run to move halfway from 1; how it
# (and the shared b) varies with each feature is penalised by one of SLOPE_PENALTIES (strongest first:
# ties go to the smoother model), down to little enough that a sharp step in a method's speed-up stays
# in its own g rather than leaking into b.
OFFSET_PENALTY = 1.0
SLOPE_PENALTIES = (1000.0, 100.0, 10.0, 1.0, 0.1, 0.01)
SWEEPS = 2  # passes of the one-at-a-time penalty search
THIN_SLOPE_PENALTY = 100.0  # with too little history to cross-validate
# Hinges max(0, z - knot) at these quantiles of each feature with more than two values make the
# regression piecewise linear: a method that pays only under some prompt length is a step, not a slope.
KNOT_QUANTILES = (0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875)
BANDWIDTHS = (2.0, 1.0, 0.5, 0.25)
KERNEL_PRIOR = 1.0  # weight of the 0 a kernel mean is shrunk toward: one close neighbour's worth
MIN_FOR_TUNING = 40  # records
SELECTION_FOLDS = 3  # when checking that tuning selects better than the plain averages
FOLDS = 5
MAX_VALIDATION = 500  # held-out tasks per fold
MAX_NEIGHBOURS = 2_000  # the most recent tasks kept for the correction (and saved)

Group = tuple[str, str]  # (model, backend)


@dataclass(frozen=True, slots=True)
class Choice:
    method: str
    expected_speedup: float  # predicted speed over the default method's predicted speed
    explored: bool  # picked to learn, not because it is predicted fastest
    predicted: dict[str, float]  # tokens/s per method; empty with nothing to predict from


@dataclass(frozen=True, slots=True)
class KindSummary:
    model: str
    backend: str
    kind: str
    method: str  # what the learner picks for a typical task of this kind
    expected_speedup: float
    records: int  # tasks of this kind in the history
    method_records: int  # of them, those run with `method`


class Chooser(Protocol):
    def fit(self, records: Sequence[Record]) -> None: ...

    def choose(self, features: TaskFeatures, *, allowed: Sequence[str] | None = None) -> Choice: ...


@dataclass(frozen=True, slots=True)
class _Model:
    """What the learner knows of one (model, backend)."""

    mean: np.ndarray  # of the feature vectors, for standardising
    scale: np.ndarray
    hinges: _Hinges
    coef: np.ndarray  # methods x basis width: log speed = basis(z) · coef[m]
    seen: np.ndarray  # methods: whether the method has a record here
    relevant: np.ndarray  # methods x DIMENSIONS: the features the method's speed-up varies with
    bandwidth: np.ndarray  # methods: of the method's kernel correction, 0 for none
    neighbours: np.ndarray  # k x DIMENSIONS standardised vectors of recent tasks
    neighbour_method: np.ndarray  # k method indices
    residual: np.ndarray  # k residuals of log speed from the regression
    tries: dict[str, dict[str, int]]  # kind -> method -> runs
    kinds: dict[str, list[float]]  # kind -> mean feature vector of its tasks

    def log_speeds(self, vector: np.ndarray, default: int) -> np.ndarray:
        z = (vector - self.mean) / self.scale
        out = self.coef @ self.hinges.basis(z[None, :])[0]
        squared = (self.neighbours - z) ** 2
        at_default = self.neighbour_method == default
        for m in np.flatnonzero(self.bandwidth > 0):
            mine = self.neighbour_method == m
            out[m] += _contrast(
                squared[mine] @ self.relevant[m],
                self.residual[mine],
                squared[at_default] @ self.relevant[m],
                self.residual[at_default],
                self.bandwidth[m],
            )
        out[~self.seen] = out[default]
        return out


@dataclass(frozen=True, slots=True)
class _Hinges:
    feature: np.ndarray  # per hinge, the feature it bends
    knot: np.ndarray  # and where, in standardised units

    @classmethod
    def place(cls, z: np.ndarray) -> _Hinges:
        features, knots = [], []
        for j in range(z.shape[1]):
            low, high = z[:, j].min(), z[:, j].max()
            if len(np.unique(z[:, j])) > 2:
                for knot in np.unique(np.quantile(z[:, j], KNOT_QUANTILES)):
                    if low < knot < high:
                        features.append(j)
                        knots.append(float(knot))
        return cls(np.array(features, dtype=int), np.array(knots))

    def columns(self) -> np.ndarray:
        """The feature behind each column of the basis; -1 for the constant."""
        return np.concatenate(([-1], np.arange(DIMENSIONS), self.feature))

    def basis(self, z: np.ndarray) -> np.ndarray:
        """[1, z, the hinges] per row of z."""
        return np.hstack([np.ones((len(z), 1)), z, np.maximum(0.0, z[:, self.feature] - self.knot)])


class MetaLearner:
    def __init__(
        self, methods: Sequence[str], *, default: str = "default", exploration: float = 0.1, seed: int = 0
    ) -> None:
        _check_methods(methods, default)
        if not 0.0 <= exploration <= 1.0:
            raise ValueError(f"exploration must lie in [0, 1], got {exploration}")
        self.methods = list(methods)
        self.default = default
        self.exploration = exploration
        self.seed = seed
        self._rng = random.Random(seed)
        self._models: dict[Group, _Model] = {}
        self._observations = 0

    def fit(self, records: Sequence[Record]) -> None:
        """Learn from the whole history (replacing what was learnt); records of methods not in `methods`,
        or with no positive speed, are left out."""
        index = {m: i for i, m in enumerate(self.methods)}
        groups: dict[Group, list[Record]] = defaultdict(list)
        for r in records:
            if r.method in index and math.isfinite(r.tokens_per_s) and r.tokens_per_s > 0:
                groups[(r.features.model, r.features.backend)].append(r)
        rng = np.random.default_rng(self.seed)
        self._models = {group: self._fit_group(rows, index, rng) for group, rows in sorted(groups.items())}
        self._observations = sum(len(rows) for rows in groups.values())

    def observations(self) -> int:
        """How many records the last fit learnt from."""
        return self._observations

    def predict(self, features: TaskFeatures) -> dict[str, float]:
        """Expected tokens/s per method; empty for a (model, backend) with no history."""
        model = self._models.get((features.model, features.backend))
        if model is None:
            return {}
        logs = model.log_speeds(features.vector(), self.methods.index(self.default))
        return {m: math.exp(s) for m, s in zip(self.methods, logs, strict=True)}

    def choose(self, features: TaskFeatures, *, allowed: Sequence[str] | None = None) -> Choice:
        """The method to run, among `allowed` (default: all): the predicted fastest, or now and then one
        less tried (with nothing known yet, any other than the default)."""
        candidates = _candidates(self.methods, allowed)
        model = self._models.get((features.model, features.backend))
        if model is None:
            # Nothing known: explore all the same, or a node that starts from nothing never learns.
            fallback = _fallback(candidates, self.default)
            others = [m for m in candidates if m != fallback]
            if others and self._rng.random() < self.exploration:
                return Choice(others[self._rng.randrange(len(others))], 1.0, True, {})
            return Choice(fallback, 1.0, False, {})
        predicted = self.predict(features)
        best = _best(candidates, predicted, self.default)
        method, explored = best, False
        others = [m for m in candidates if m != best]
        if self.exploration > 0 and others:
            tries = model.tries.get(features.kind(), {})
            least = min(tries.get(m, 0) for m in others)
            if self._rng.random() < self.exploration / math.sqrt(1 + least):
                pool = [m for m in others if tries.get(m, 0) == least]
                method, explored = pool[self._rng.randrange(len(pool))], True
        return Choice(method, predicted[method] / predicted[self.default], explored, predicted)

    def summary(self) -> list[KindSummary]:
        """Per (model, backend, task kind), what the learner picks for the kind's mean task, without
        exploring, and how much history backs it."""
        default = self.methods.index(self.default)
        rows = []
        for (model_name, backend), model in self._models.items():
            for kind, mean in sorted(model.kinds.items()):
                logs = model.log_speeds(np.array(mean), default)
                predicted = {m: float(s) for m, s in zip(self.methods, logs, strict=True)}
                best = _best(self.methods, predicted, self.default)
                tries = model.tries[kind]
                speedup = math.exp(predicted[best] - predicted[self.default])
                rows.append(
                    KindSummary(
                        model_name, backend, kind, best, speedup, sum(tries.values()), tries.get(best, 0)
                    )
                )
        return rows

    # ---- fitting

    def _fit_group(
        self, rows: list[Record], index: dict[str, int], rng: np.random.Generator, tune: bool | None = None
    ) -> _Model:
        if tune is None:
            tune = len(rows) >= MIN_FOR_TUNING and not self._thin_selects_as_well(rows, index, rng)
        vectors = np.array([r.features.vector() for r in rows])
        method = np.array([index[r.method] for r in rows])
        y = np.log([r.tokens_per_s for r in rows])
        mean = vectors.mean(axis=0)
        scale = vectors.std(axis=0)
        scale[scale < 1e-9] = 1.0  # a feature constant in this history carries nothing
        z = (vectors - mean) / scale
        hinges = _Hinges.place(z)
        x = hinges.basis(z)
        default = index[self.default]
        count = len(self.methods)
        penalty = _penalties(count, x.shape[1], THIN_SLOPE_PENALTY)
        relevant, bandwidth = np.zeros((count, DIMENSIONS), dtype=bool), np.zeros(count)
        if tune:
            penalty = _tune_penalties(x, y, method, count, hinges.columns(), default, rng)
            relevant = penalty[:count, 1 : 1 + DIMENSIONS] < SLOPE_PENALTIES[0]
            bandwidth = _tune_bandwidths(x, z, y, method, penalty, relevant, default, rng)
        coef = _ridge(_Moments.of(x, y, method, count), default, penalty)
        residual = y - _linear(coef, x, method)
        tries: dict[str, Counter[str]] = defaultdict(Counter)
        sums: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(DIMENSIONS))
        for r, v in zip(rows, vectors, strict=True):
            kind = r.features.kind()
            tries[kind][r.method] += 1
            sums[kind] += v
        return _Model(
            mean=mean,
            scale=scale,
            hinges=hinges,
            coef=coef,
            seen=np.bincount(method, minlength=count) > 0,
            relevant=relevant,
            bandwidth=bandwidth,
            neighbours=z[-MAX_NEIGHBOURS:],
            neighbour_method=method[-MAX_NEIGHBOURS:],
            residual=residual[-MAX_NEIGHBOURS:],
            tries={k: dict(sorted(c.items())) for k, c in sorted(tries.items())},
            kinds={k: (s / sum(tries[k].values())).tolist() for k, s in sorted(sums.items())},
        )

    def _thin_selects_as_well(
        self, rows: list[Record], index: dict[str, int], rng: np.random.Generator
    ) -> bool:
        """Whether the untuned model (per-method mean speed-ups) picks methods at least as well as the
        tuned one, by the regret of each one's picks on tasks held out by cross-validation (tasks measured
        with two methods or more): tuning on a small, noisy history can fit its noise, and then the plain
        averages select better. Without such tasks there is nothing to compare, and tuning stays."""
        tasks: dict[TaskFeatures, list[Record]] = defaultdict(list)
        for r in rows:
            tasks[r.features].append(r)
        keys = [k for k, rs in tasks.items() if len({r.method for r in rs}) >= 2]
        if len(keys) < SELECTION_FOLDS:
            return False
        default = index[self.default]
        regret = {True: 0.0, False: 0.0}
        for fold in np.array_split(rng.permutation(len(keys)), SELECTION_FOLDS):
            held = {keys[i] for i in fold}
            rest = [r for r in rows if r.features not in held]
            for tune in (True, False):
                model = self._fit_group(rest, index, rng, tune=tune)
                for key in held:
                    speeds: dict[str, list[float]] = defaultdict(list)
                    for r in tasks[key]:
                        speeds[r.method].append(r.tokens_per_s)
                    median = {m: float(np.median(v)) for m, v in speeds.items()}
                    logs = model.log_speeds(key.vector(), default)
                    pick = max(median, key=lambda m: logs[index[m]])
                    regret[tune] += math.log(max(median.values()) / median[pick])
        return regret[False] <= regret[True]

    # ---- persisting

    def save(self, path: Path) -> None:
        """Write everything learnt as JSON, owner-only, replacing `path` atomically."""
        data = {
            "format": FORMAT,
            "methods": self.methods,
            "default": self.default,
            "exploration": self.exploration,
            "seed": self.seed,
            "observations": self._observations,
            "models": [_model_to_json(g, m) for g, m in self._models.items()],
        }
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> MetaLearner:
        """A learner as saved; exploration draws start afresh from the seed. A file that is not one raises
        ValueError."""
        try:
            data = json.loads(path.read_text())
            if data["format"] != FORMAT:
                raise ValueError(f"format {data['format']!r}, expected {FORMAT}")
            if not isinstance(data["methods"], list) or not all(isinstance(m, str) for m in data["methods"]):
                raise ValueError("methods must be a list of names")
            learner = cls(
                data["methods"],
                default=data["default"],
                exploration=float(data["exploration"]),
                seed=int(data["seed"]),
            )
            learner._models = dict(_model_from_json(m, len(learner.methods)) for m in data["models"])
            learner._observations = int(data["observations"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path} is not a saved meta-learner: {exc!r}") from exc
        return learner


@dataclass(frozen=True, slots=True)
class _Moments:
    """Per method, the normal-equation terms of its rows: xᵀx and xᵀy."""

    xx: np.ndarray  # methods x width x width
    xy: np.ndarray  # methods x width

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray, method: np.ndarray, count: int) -> _Moments:
        xx = np.zeros((count, x.shape[1], x.shape[1]))
        xy = np.zeros((count, x.shape[1]))
        for m in range(count):
            rows = x[method == m]
            xx[m], xy[m] = rows.T @ rows, rows.T @ y[method == m]
        return cls(xx, xy)


def _penalties(count: int, width: int, slope: float) -> np.ndarray:
    """Ridge penalties per column: a row per method's g, then one for the shared b, whose constant is free."""
    penalty = np.full((count + 1, width), slope)
    penalty[:, 0] = OFFSET_PENALTY
    penalty[count, 0] = 0.0
    return penalty


def _ridge(moments: _Moments, default: int, penalty: np.ndarray) -> np.ndarray:
    """coef[m] = b + g_m minimising squared error plus the penalties (`_penalties`), g_default = 0. Solved
    by eliminating each g_m = (A_m + P_m)⁻¹(c_m - A_m b), so the cost grows with the number of methods,
    not its cube."""
    count, width = moments.xy.shape
    gram, target = np.diag(penalty[count]) + moments.xx.sum(axis=0), moments.xy.sum(axis=0)
    eliminated = {}
    for m in range(count):
        if m == default:
            continue
        a = moments.xx[m]
        solved = np.linalg.solve(a + np.diag(penalty[m]), np.column_stack([a, moments.xy[m]]))
        gram -= a @ solved[:, :width]
        target -= a @ solved[:, width]
        eliminated[m] = solved
    b = np.linalg.solve(gram, target)
    coef = np.tile(b, (count, 1))
    for m, solved in eliminated.items():
        coef[m] += solved[:, width] - solved[:, :width] @ b
    return coef


def _linear(coef: np.ndarray, x: np.ndarray, method: np.ndarray) -> np.ndarray:
    return (coef[method] * x).sum(axis=1)


def _folds(count: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """(training rows, held-out rows) per fold; at most MAX_VALIDATION held out."""
    fold = rng.permutation(count) % FOLDS
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)[:MAX_VALIDATION]) for f in range(FOLDS)]


def _tune_penalties(
    x: np.ndarray,
    y: np.ndarray,
    method: np.ndarray,
    count: int,
    columns: np.ndarray,
    default: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """The penalty on each feature's columns, of each method's g and of the shared b, with the least
    squared error of log speed on held-out tasks. Tuned one at a time from the weakest, in SWEEPS passes,
    since each moves b and so every method's error: a speed-up is let vary only with the features it is
    seen to vary with, and a method that merely follows the default keeps its noise out."""
    splits = [
        (held, _Moments.of(x[train], y[train], method[train], count)) for train, held in _folds(len(x), rng)
    ]

    def error(penalty: np.ndarray) -> float:
        return sum(
            float(((y[held] - _linear(_ridge(moments, default, penalty), x[held], method[held])) ** 2).sum())
            for held, moments in splits
        )

    penalty = _penalties(count, len(columns), SLOPE_PENALTIES[-1])
    rows = [m for m in np.unique(method) if m != default] + [count]
    for _ in range(SWEEPS):
        for row in rows:
            for j in range(DIMENSIONS):
                trials = []
                for candidate in SLOPE_PENALTIES:
                    trial = penalty.copy()
                    trial[row, columns == j] = candidate
                    trials.append((error(trial), trial))
                # min takes the first of equals: the strongest penalty that does as well.
                penalty = min(trials, key=lambda t: t[0])[1]
    return penalty


def _tune_bandwidths(
    x: np.ndarray,
    z: np.ndarray,
    y: np.ndarray,
    method: np.ndarray,
    penalty: np.ndarray,
    relevant: np.ndarray,
    default: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Per method, the bandwidth of its kernel correction (0: none) with the least squared error of its log
    speeds on held-out tasks."""
    count = len(relevant)
    errors = np.zeros((1 + len(BANDWIDTHS), count))
    for train, held in _folds(len(x), rng):
        coef = _ridge(_Moments.of(x[train], y[train], method[train], count), default, penalty)
        near = train[-MAX_NEIGHBOURS:]
        residual = y[near] - _linear(coef, x[near], method[near])
        at_default = method[near] == default
        for m in np.unique(method):
            if m == default or not relevant[m].any():
                continue
            mine, held_m = method[near] == m, held[method[held] == m]
            error = y[held_m] - _linear(coef, x[held_m], method[held_m])
            squared = (z[held_m, None, :] - z[None, near, :]) ** 2 @ relevant[m]
            errors[0, m] += (error**2).sum()
            for b, h in enumerate(BANDWIDTHS, 1):
                contrast = _contrast(
                    squared[:, mine], residual[mine], squared[:, at_default], residual[at_default], h
                )
                errors[b, m] += ((error - contrast) ** 2).sum()
    # argmin takes the first of equals: no correction unless it helps.
    return np.array([0.0, *BANDWIDTHS])[errors.argmin(axis=0)]


def _contrast(
    squared: np.ndarray,
    residual: np.ndarray,
    squared_default: np.ndarray,
    residual_default: np.ndarray,
    h: float,
) -> np.ndarray:
    """How much more a method beat the regression than the default did on tasks near these: kernel means
    of residuals (weights exp(-d²/2h²), d² given per neighbour in `squared`), each shrunk toward 0. Taking
    the default's off cancels what the regression misses for every method alike."""
    return _local_mean(squared, residual, h) - _local_mean(squared_default, residual_default, h)


def _local_mean(squared: np.ndarray, residual: np.ndarray, h: float) -> np.ndarray:
    weight = np.exp(-squared / (2 * h**2))
    return (weight @ residual) / (weight.sum(axis=-1) + KERNEL_PRIOR)


# ---- choosing


def _check_methods(methods: Sequence[str], default: str) -> None:
    if len(set(methods)) != len(methods):
        raise ValueError(f"methods are named twice: {list(methods)}")
    if default not in methods:
        raise ValueError(f"the default method {default!r} is not among the methods")


def _candidates(methods: Sequence[str], allowed: Sequence[str] | None) -> list[str]:
    candidates = [m for m in methods if allowed is None or m in allowed]
    if not candidates:
        raise ValueError(f"none of the allowed methods {list(allowed or [])} is known")
    return candidates


def _fallback(candidates: Sequence[str], default: str) -> str:
    return default if default in candidates else candidates[0]


def _best(candidates: Sequence[str], predicted: dict[str, float], default: str) -> str:
    """The fastest predicted candidate; the default among equals, then the first."""
    return max(candidates, key=lambda m: (predicted[m], m == default))


# ---- saved form


def _model_to_json(group: Group, model: _Model) -> dict[str, Any]:
    return {
        "model": group[0],
        "backend": group[1],
        "mean": model.mean.tolist(),
        "scale": model.scale.tolist(),
        "hinge_feature": model.hinges.feature.tolist(),
        "hinge_knot": model.hinges.knot.tolist(),
        "coef": model.coef.tolist(),
        "seen": model.seen.tolist(),
        "relevant": model.relevant.tolist(),
        "bandwidth": model.bandwidth.tolist(),
        "neighbours": model.neighbours.tolist(),
        "neighbour_method": model.neighbour_method.tolist(),
        "residual": model.residual.tolist(),
        "tries": model.tries,
        "kinds": model.kinds,
    }


def _model_from_json(data: dict[str, Any], count: int) -> tuple[Group, _Model]:
    def array(key: str, shape: tuple[int, ...], dtype: type = float) -> np.ndarray:
        value = np.array(data[key], dtype=dtype)
        if value.shape != shape:
            raise ValueError(f"{key} has shape {value.shape}, expected {shape}")
        return value

    k, h = len(data["residual"]), len(data["hinge_knot"])
    hinges = _Hinges(array("hinge_feature", (h,), int), array("hinge_knot", (h,)))
    if h and not 0 <= hinges.feature.min() <= hinges.feature.max() < DIMENSIONS:
        raise ValueError("a hinge's feature is out of range")
    neighbour_method = array("neighbour_method", (k,), int)
    if k and not 0 <= neighbour_method.min() <= neighbour_method.max() < count:
        raise ValueError("a neighbour's method is out of range")
    kinds = {str(kind): [float(v) for v in mean] for kind, mean in data["kinds"].items()}
    tries = {str(kind): {str(m): int(n) for m, n in t.items()} for kind, t in data["tries"].items()}
    if kinds.keys() != tries.keys() or any(len(mean) != DIMENSIONS for mean in kinds.values()):
        raise ValueError("the task kinds do not match their tries")
    model = _Model(
        mean=array("mean", (DIMENSIONS,)),
        scale=array("scale", (DIMENSIONS,)),
        hinges=hinges,
        coef=array("coef", (count, 1 + DIMENSIONS + h)),
        seen=array("seen", (count,), bool),
        relevant=array("relevant", (count, DIMENSIONS), bool),
        bandwidth=array("bandwidth", (count,)),
        neighbours=array("neighbours", (k, DIMENSIONS)),
        neighbour_method=neighbour_method,
        residual=array("residual", (k,)),
        tries=tries,
        kinds=kinds,
    )
    return (str(data["model"]), str(data["backend"])), model


# ---- baselines, to measure the learner against


class BestOnAverage:
    """Per (model, backend), always the method with the highest mean log speed in the training history:
    the best single method (the best mean speed-up over the default when every method ran every task)."""

    def __init__(self, methods: Sequence[str], *, default: str = "default") -> None:
        _check_methods(methods, default)
        self.methods = list(methods)
        self.default = default
        self._speeds: dict[Group, dict[str, float]] = {}

    def fit(self, records: Sequence[Record]) -> None:
        logs: dict[Group, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in records:
            if r.method in self.methods and math.isfinite(r.tokens_per_s) and r.tokens_per_s > 0:
                logs[(r.features.model, r.features.backend)][r.method].append(math.log(r.tokens_per_s))
        self._speeds = {
            group: {m: math.exp(sum(v) / len(v)) for m, v in sorted(by_method.items())}
            for group, by_method in sorted(logs.items())
        }

    def choose(self, features: TaskFeatures, *, allowed: Sequence[str] | None = None) -> Choice:
        candidates = _candidates(self.methods, allowed)
        speeds = self._speeds.get((features.model, features.backend), {})
        return _argmax_choice(candidates, speeds, self.default)


class GradientBoosting:
    """Per (model, backend), a gradient-boosted trees regressor of log speed from the feature vector and
    a one-hot of the method; picks the method predicted fastest, among those seen. The kind of model the
    published comparison puts at 81.5% against MetaInf's 89.8%."""

    def __init__(self, methods: Sequence[str], *, default: str = "default", seed: int = 0) -> None:
        _check_methods(methods, default)
        self.methods = list(methods)
        self.default = default
        self.seed = seed
        self._models: dict[Group, tuple[Any, set[str]]] = {}

    def fit(self, records: Sequence[Record]) -> None:
        # Imported here: scikit-learn is needed for this benchmark baseline only, not by a node.
        from sklearn.ensemble import HistGradientBoostingRegressor
        from threadpoolctl import threadpool_limits

        groups: dict[Group, list[Record]] = defaultdict(list)
        for r in records:
            if r.method in self.methods and math.isfinite(r.tokens_per_s) and r.tokens_per_s > 0:
                groups[(r.features.model, r.features.backend)].append(r)
        self._models = {}
        for group, rows in sorted(groups.items()):
            x = np.array([self._row(r.features.vector(), r.method) for r in rows])
            y = np.log([r.tokens_per_s for r in rows])
            with threadpool_limits(1):  # OpenMP threads on busy cores spin: far slower at this size
                regressor = HistGradientBoostingRegressor(random_state=self.seed).fit(x, y)
            self._models[group] = (regressor, {r.method for r in rows})

    def choose(self, features: TaskFeatures, *, allowed: Sequence[str] | None = None) -> Choice:
        candidates = _candidates(self.methods, allowed)
        regressor, seen = self._models.get((features.model, features.backend), (None, set()))
        if regressor is None:
            return _argmax_choice(candidates, {}, self.default)
        from threadpoolctl import threadpool_limits

        known = [m for m in self.methods if m in seen]
        vector = features.vector()
        with threadpool_limits(1):
            logs = regressor.predict(np.array([self._row(vector, m) for m in known]))
        speeds = {m: math.exp(s) for m, s in zip(known, logs, strict=True)}
        return _argmax_choice(candidates, speeds, self.default)

    def _row(self, vector: np.ndarray, method: str) -> np.ndarray:
        return np.concatenate((vector, [float(m == method) for m in self.methods]))


class RandomChoice:
    """A method drawn uniformly from the candidates: the floor any learner must clear. Takes `default`
    only to be built like the others."""

    def __init__(self, methods: Sequence[str], *, default: str = "default", seed: int = 0) -> None:
        _check_methods(methods, default)
        self.methods = list(methods)
        self._rng = random.Random(seed)

    def fit(self, records: Sequence[Record]) -> None:
        """Nothing to learn."""

    def choose(self, features: TaskFeatures, *, allowed: Sequence[str] | None = None) -> Choice:
        candidates = _candidates(self.methods, allowed)
        return Choice(candidates[self._rng.randrange(len(candidates))], 1.0, False, {})


def _argmax_choice(candidates: Sequence[str], speeds: dict[str, float], default: str) -> Choice:
    """The candidate with the highest known speed, or the fallback when none has one."""
    known = [m for m in candidates if m in speeds]
    if not known:
        return Choice(_fallback(candidates, default), 1.0, False, dict(speeds))
    method = _best(known, speeds, default)
    speedup = speeds[method] / speeds[default] if default in speeds else 1.0
    return Choice(method, speedup, False, dict(speeds))
