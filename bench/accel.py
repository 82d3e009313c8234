"""Does the node's meta-learner pick the fastest acceleration method? Measured on real models.

    python -m bench.accel [--per-kind 4] [--held-out 3] [--repeats 2] [--engines llamacpp,transformers]
                          [--save history.jsonl]

For each engine (llama.cpp and transformers, both on SmolLM2), every task of a
training mix and of a held-out mix (accel.tasks, other seeds) runs with every
lossless method of the engine, `repeats` times (the median speed counts),
each from a cold prompt cache: the speed of a method on a task is output
tokens per second of the whole request. The learners are fitted on the
training history only; on each held-out task the oracle is the method
measured fastest, and each learner's pick is scored: selection accuracy
(its pick is the oracle), near-oracle (within 5% of the oracle's speed: on
this noisy machine methods a few percent apart swap places between runs),
and speed-up (geometric mean over tasks) over the default settings and over a
random method. MetaInf's anchor: 89.8% selection accuracy, gradient boosting
81.5%. Then an online run: the learner with exploration starts from nothing
and meets the training and held-out tasks in a random order, learning from
each measured outcome as a node would.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

from accel.features import TaskFeatures
from accel.history import Record
from accel.learner import BestOnAverage, Chooser, GradientBoosting, MetaLearner, RandomChoice
from accel.methods import Method
from accel.tasks import Task, mix
from node.accel import features_of, fresh
from node.catalog import resolve
from node.engines.base import Engine, EngineSpec
from swarm.progress import Bars, waiting

MODEL = "smollm2-135m-instruct"
NEAR = 0.95


@dataclass(frozen=True)
class Measured:
    task: Task
    features: TaskFeatures
    speeds: dict[str, float]  # method -> median tokens/s
    records: list[Record]


def load(engine: str) -> Engine:
    path = str(resolve(MODEL).path)
    if engine == "llamacpp":
        from node.engines.llamacpp import LlamaCppEngine

        return LlamaCppEngine(EngineSpec(MODEL, path, context_length=2048))
    from node.engines.transformers_engine import TransformersEngine

    return TransformersEngine(EngineSpec(MODEL, path, context_length=2048), device="cpu")


def measure(
    engine: Engine, tasks: Sequence[Task], repeats: int, on_task: Callable[[int, int], None]
) -> list[Measured]:
    """Every lossless method on every task, `repeats` times; `on_task(done, total)` after each task."""
    methods = [m for m in engine.methods() if m.lossless]
    info = engine.info
    for method in methods:  # load every profile before any timing
        engine.generate(tasks[0].request(MODEL), fresh(method))
    found = []
    on_task(0, len(tasks))
    for task in tasks:
        request = task.request(MODEL)
        features = features_of(request, MODEL, info.backend, info.hardware, 0)
        runs: dict[str, list[float]] = {m.name: [] for m in methods}
        records = []
        for _ in range(repeats):
            # Methods in a new order each time, so a slow spell of the machine does not favour one.
            for method in random.sample(methods, len(methods)):
                records.append(_run(engine, request, method, features))
                runs[method.name].append(records[-1].tokens_per_s)
        found.append(Measured(task, features, {k: statistics.median(v) for k, v in runs.items()}, records))
        on_task(len(found), len(tasks))
    return found


def _run(engine: Engine, request: object, method: Method, features: TaskFeatures) -> Record:
    started = time.perf_counter()
    generation = engine.generate(request, fresh(method))  # type: ignore[arg-type]
    latency = time.perf_counter() - started
    tokens = generation.usage.completion_tokens
    return Record(features, method.name, latency, None, tokens / latency, tokens, None, time.time())


@dataclass(frozen=True)
class Score:
    name: str
    accuracy: float
    near: float
    over_default: float
    over_random: float


def score(name: str, chooser: Chooser, held_out: Sequence[Measured]) -> Score:
    hits = near = 0
    over_default, over_random = [], []
    for m in held_out:
        pick = chooser.choose(m.features, allowed=list(m.speeds)).method
        best = max(m.speeds.values())
        hits += m.speeds[pick] == best
        near += m.speeds[pick] >= NEAR * best
        over_default.append(m.speeds[pick] / m.speeds["default"])
        over_random.append(m.speeds[pick] / statistics.mean(m.speeds.values()))
    n = len(held_out)
    return Score(
        name,
        hits / n,
        near / n,
        statistics.geometric_mean(over_default),
        statistics.geometric_mean(over_random),
    )


def oracle(held_out: Sequence[Measured]) -> Score:
    best = [max(m.speeds.values()) for m in held_out]
    return Score(
        "oracle",
        1.0,
        1.0,
        statistics.geometric_mean([b / m.speeds["default"] for b, m in zip(best, held_out, strict=True)]),
        statistics.geometric_mean(
            [b / statistics.mean(m.speeds.values()) for b, m in zip(best, held_out, strict=True)]
        ),
    )


def online(train: Sequence[Measured], held_out: Sequence[Measured], seed: int) -> tuple[float, float, Score]:
    """The learner as a node runs it: exploring, refitted every 10 tasks, learning only what it ran.
    Returns its speed-up over the default while learning, the share of explored picks, and its score on
    the held-out tasks afterwards."""
    names = list(train[0].speeds)
    learner = MetaLearner(names, exploration=0.2, seed=seed)
    stream = list(train) + list(held_out)
    random.Random(seed).shuffle(stream)
    seen: list[Record] = []
    ratios, explored = [], 0
    for i, m in enumerate(stream):
        choice = learner.choose(m.features, allowed=names)
        explored += choice.explored
        ratios.append(m.speeds[choice.method] / m.speeds["default"])
        seen += [r for r in m.records if r.method == choice.method]
        if (i + 1) % 10 == 0:
            learner.fit(seen)
    learner.fit(seen)
    final = MetaLearner(names, exploration=0.0, seed=seed)
    final.fit(seen)
    return statistics.geometric_mean(ratios), explored / len(stream), score("online, after", final, held_out)


def run_engine(engine_name: str, per_kind: int, held_out_per_kind: int, repeats: int, seed: int) -> dict:
    with waiting(f"loading {MODEL} on {engine_name}"):
        engine = load(engine_name)
    try:
        with Bars(transient=True, timing=True) as bars:  # timing: the engine runs in this process
            started = time.perf_counter()
            train = measure(
                engine,
                mix(per_kind, seed=seed + 1),
                repeats,
                partial(bars.update, f"{engine_name}: training tasks"),
            )
            held = measure(
                engine,
                mix(held_out_per_kind, seed=seed + 2),
                repeats,
                partial(bars.update, f"{engine_name}: held-out tasks"),
            )
            seconds = time.perf_counter() - started
    finally:
        engine.close()
    return evaluate(engine_name, train, held, seconds, seed)


def replay(path: Path) -> dict[str, tuple[list[Measured], list[Measured]]]:
    """Training and held-out tasks per backend, from records saved by --save (each task's records are
    those with its features)."""
    found: dict[str, dict[str, dict[TaskFeatures, list[Record]]]] = {}
    for line in path.read_text().splitlines():
        row = json.loads(line)
        split = row.pop("split")
        record = Record(**{**row, "features": TaskFeatures(**row["features"])})
        by_split = found.setdefault(record.features.backend, {"train": {}, "held-out": {}})
        by_split[split].setdefault(record.features, []).append(record)

    def tasks(groups: dict[TaskFeatures, list[Record]]) -> list[Measured]:
        measured = []
        for features, records in groups.items():
            runs: dict[str, list[float]] = {}
            for r in records:
                runs.setdefault(r.method, []).append(r.tokens_per_s)
            speeds = {m: statistics.median(v) for m, v in runs.items()}
            measured.append(Measured(Task("replayed", "", features.max_tokens), features, speeds, records))
        return measured

    return {b: (tasks(s["train"]), tasks(s["held-out"])) for b, s in found.items()}


def evaluate(
    engine_name: str, train: list[Measured], held: list[Measured], seconds: float, seed: int
) -> dict:
    names = list(train[0].speeds)
    records = [r for m in train for r in m.records]
    choosers: list[tuple[str, Chooser]] = [
        ("meta-learner", MetaLearner(names, exploration=0.0, seed=seed)),
        ("gradient boosting", GradientBoosting(names, seed=seed)),
        ("best on average", BestOnAverage(names)),
        ("random", RandomChoice(names, seed=seed)),
    ]
    scores = [oracle(held)]
    for name, chooser in choosers:
        chooser.fit(records)
        scores.append(score(name, chooser, held))
    learning, explored, after = online(train, held, seed)
    scores.append(after)
    wins = {n: sum(max(m.speeds, key=m.speeds.__getitem__) == n for m in held) for n in names}
    return {
        "engine": engine_name,
        "methods": names,
        "train": len(train),
        "held_out": len(held),
        "seconds": seconds,
        "oracle_wins": wins,
        "scores": [asdict(s) for s in scores],
        "online": {"speedup_while_learning": learning, "explored": explored},
        "records": [_record_json(r, "train") for m in train for r in m.records]
        + [_record_json(r, "held-out") for m in held for r in m.records],
    }


def _record_json(r: Record, split: str) -> dict:
    return {**asdict(r), "features": asdict(r.features), "split": split}


def print_engine(result: dict) -> None:
    print(
        f"\n{result['engine']} on {MODEL}: {result['train']} training, {result['held_out']} held-out tasks, "
        f"methods {', '.join(result['methods'])} ({result['seconds']:.0f} s of measuring)"
    )
    print(
        "held-out tasks on which each method was measured fastest: "
        + ", ".join(f"{k} {v}" for k, v in result["oracle_wins"].items())
    )
    print(f"{'chooser':22} {'selection':>10} {'near-oracle':>12} {'vs default':>11} {'vs random':>10}")
    for s in result["scores"]:
        print(
            f"{s['name']:22} {s['accuracy']:10.1%} {s['near']:12.1%} "
            f"{s['over_default']:10.3f}x {s['over_random']:9.3f}x"
        )
    o = result["online"]
    print(
        f"online, while learning: {o['speedup_while_learning']:.3f}x over the default, "
        f"{o['explored']:.0%} of picks explored"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-kind", type=int, default=4, help="training tasks of each kind")
    parser.add_argument("--held-out", type=int, default=3, help="held-out tasks of each kind")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--engines", default="llamacpp,transformers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="write every measured record here (JSON Lines)")
    parser.add_argument("--replay", type=Path, help="score the learners on records saved by --save instead")
    args = parser.parse_args(argv)
    print("Acceleration-method selection on held-out tasks (anchors: MetaInf 89.8%, gradient boosting 81.5%)")
    results = []
    if args.replay:
        for engine, (train, held) in replay(args.replay).items():
            print_engine(evaluate(engine, train, held, 0.0, args.seed))
        return 0
    for engine in args.engines.split(","):
        results.append(run_engine(engine, args.per_kind, args.held_out, args.repeats, args.seed))
        print_engine(results[-1])
    if args.save:
        with args.save.open("w") as out:
            for result in results:
                for record in result["records"]:
                    out.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
