"""The meta-learner on a history recorded by `python -m bench.accel` (llama.cpp on SmolLM2, this kind of
2-core machine): real speeds of real methods on real tasks, not a simulation. Fitted on the training
tasks, it must pick faster methods than the default settings on the held-out ones, and be right far
more often than a random pick."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

from accel.features import TaskFeatures
from accel.history import Record
from accel.learner import MetaLearner, RandomChoice

RECORDED = Path(__file__).parents[1] / "support" / "accel_history.jsonl"
METHODS = ["default", "ngram-simple", "ngram-mod", "threads-all"]
Speeds = dict[TaskFeatures, dict[str, float]]


@pytest.fixture(scope="module")
def history() -> tuple[list[Record], Speeds]:
    train: list[Record] = []
    held: dict[TaskFeatures, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for line in RECORDED.read_text().splitlines():
        row = json.loads(line)
        split = row.pop("split")
        record = Record(**{**row, "features": TaskFeatures(**row["features"])})
        if split == "train":
            train.append(record)
        else:
            held[record.features][record.method].append(record.tokens_per_s)
    return train, {f: {m: statistics.median(v) for m, v in s.items()} for f, s in held.items()}


def picks(chooser: MetaLearner | RandomChoice, speeds: Speeds) -> tuple[float, float]:
    """Share of held-out tasks on which it picked the fastest method, and its speed-up over the
    default (geometric mean)."""
    hits, logs = 0, 0.0
    for features, measured in speeds.items():
        pick = chooser.choose(features, allowed=METHODS).method
        hits += measured[pick] == max(measured.values())
        logs += math.log(measured[pick] / measured["default"])
    return hits / len(speeds), math.exp(logs / len(speeds))


def test_the_learner_beats_the_default_and_chance_on_a_recorded_history(
    history: tuple[list[Record], Speeds],
) -> None:
    train, held = history
    learner = MetaLearner(METHODS, exploration=0.0)
    learner.fit(train)
    accuracy, speedup = picks(learner, held)
    chance = statistics.mean(sum(s == max(m.values()) for s in m.values()) / len(m) for m in held.values())
    assert accuracy >= chance + 0.4, (accuracy, chance)
    assert speedup > 1.2
    random_accuracy = statistics.mean(picks(RandomChoice(METHODS, seed=s), held)[0] for s in range(20))
    assert accuracy > random_accuracy + 0.4
