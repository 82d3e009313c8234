"""Calibration runs: ask every model every item, grade the answers, keep the outcomes on disk.

A run over a few thousand questions and several models takes hours, so each
outcome is appended and fsynced the moment it is graded, and a run started
again skips what is stored: a crash costs at most the answers in flight. A
failed ask is not stored, so the next run asks again. The outcomes then
become the `CalibrationResult`s that `routing.clusters.build_table` counts.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import trio

from routing.clusters import CalibrationResult
from routing.datasets import Item
from routing.grading import grade

log = logging.getLogger(__name__)

# Room for a short answer, a letter with a few words around it, or a whole function.
MAX_TOKENS = {"qa": 64, "mc": 32, "code": 512}

Ask = Callable[[str, Item, int], Awaitable[str]]


class CalibrationError(Exception):
    """A calibration run in which no model answered at all."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one model did on one item; `item` is the item's id within its dataset."""

    dataset: str
    item: str
    model: str
    correct: bool
    answer: str
    seconds: float

    @property
    def key(self) -> tuple[str, str, str]:
        return self.dataset, self.item, self.model


@dataclass(frozen=True, slots=True)
class CalibrationSummary:
    """One run: pairs asked (failures included), skipped as already stored, and failed; then, per model,
    the correct and total outcomes stored for the run's items, earlier runs included."""

    asked: int
    skipped: int
    failed: int
    correct: dict[str, int]
    total: dict[str, int]


class ResultStore:
    """Outcomes in one append-only JSON Lines file, for one writer at a time.

    A crash can leave a torn last line; it is dropped (with a warning) and cut
    off the file when the store opens, so the next line appended starts clean.
    A bad line anywhere else is damage this store did not cause, and an error.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._outcomes: list[Outcome] = []
        self.load()

    def load(self) -> list[Outcome]:
        """(Re)read the file, repairing a torn end, and return its outcomes."""
        self._outcomes = []
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().split(b"\n")
        start = 0  # of the current line
        for number, line in enumerate(lines, start=1):
            if line.strip():
                try:
                    self._outcomes.append(_outcome(json.loads(line)))
                except (ValueError, KeyError, TypeError) as e:
                    if any(rest.strip() for rest in lines[number:]):
                        raise ValueError(f"{self.path}:{number}: bad outcome ({e})") from e
                    log.warning("%s: dropping a torn last line left by a crash: %r", self.path, line[:80])
                    with self.path.open("r+b") as f:
                        f.truncate(start)
                    break
            start += len(line) + 1
        else:
            if lines[-1].strip():  # whole, but cut off before its newline: the next line must not join it
                with self.path.open("ab") as f:
                    f.write(b"\n")
        return self.outcomes()

    def outcomes(self) -> list[Outcome]:
        return list(self._outcomes)

    def done(self) -> set[tuple[str, str, str]]:
        """(dataset, item, model) for every stored outcome."""
        return {o.key for o in self._outcomes}

    def add(self, outcome: Outcome) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(outcome)) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self._outcomes.append(outcome)


def _outcome(data: dict) -> Outcome:
    if not isinstance(data["correct"], bool):
        raise TypeError(f"correct must be true or false, got {data['correct']!r}")
    return Outcome(
        dataset=str(data["dataset"]),
        item=str(data["item"]),
        model=str(data["model"]),
        correct=data["correct"],
        answer=str(data["answer"]),
        seconds=float(data["seconds"]),
    )


def default_max_tokens(item: Item) -> int:
    return MAX_TOKENS[item.kind]


async def calibrate(
    items: Sequence[Item],
    models: Sequence[str],
    ask: Ask,
    store: ResultStore,
    *,
    concurrency: int = 1,
    on_progress: Callable[[str, int, int], None] | None = None,
    max_tokens: Callable[[Item], int] = default_max_tokens,
) -> CalibrationSummary:
    """Ask each model each item not yet in `store`, as `ask(model, item, max_tokens(item))`, and store
    each graded answer as it comes. `on_progress(model, done, total)`: `done` of the `total` questions
    this run puts to `model` are through (answered or failed).

    Items go item by item, every model in turn, so a run cut short leaves the
    models compared on the same questions. A pair whose ask raises is logged,
    counted as failed and left for the next run; if every ask fails, the run
    raises CalibrationError, since the models or the network must be down.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    done = store.done()
    pairs = [(item, model) for item in items for model in models]
    todo = [(item, model) for item, model in pairs if (item.dataset, item.id, model) not in done]
    planned = Counter(model for _, model in todo)
    finished: Counter[str] = Counter()
    failed = 0

    async def worker(queue: Iterable[tuple[Item, str]]) -> None:
        nonlocal failed
        for item, model in queue:
            start = time.perf_counter()
            try:
                answer = await ask(model, item, max_tokens(item))
            except Exception as e:
                failed += 1
                log.warning("%s on %s/%s failed: %r", model, item.dataset, item.id, e)
            else:
                seconds = time.perf_counter() - start
                correct = await trio.to_thread.run_sync(grade, item, answer)
                store.add(Outcome(item.dataset, item.id, model, correct, answer, seconds))
            finished[model] += 1
            if on_progress is not None:
                on_progress(model, finished[model], planned[model])

    queue = iter(todo)  # shared: each worker takes the next pair when it is free
    async with trio.open_nursery() as nursery:
        for _ in range(min(concurrency, len(todo))):
            nursery.start_soon(worker, queue)
    if todo and failed == len(todo):
        raise CalibrationError(f"all {failed} asks failed; see the log for why")
    wanted = {(item.dataset, item.id) for item in items}
    correct = dict.fromkeys(models, 0)
    total = dict.fromkeys(models, 0)
    for o in store.outcomes():
        if o.model in total and (o.dataset, o.item) in wanted:
            total[o.model] += 1
            correct[o.model] += o.correct
    return CalibrationSummary(len(todo), len(pairs) - len(todo), failed, correct, total)


def table_inputs(
    items: Sequence[Item], outcomes: Iterable[Outcome], models: Iterable[str]
) -> tuple[list[Item], list[CalibrationResult]]:
    """The items with at least one outcome from `models`, and those outcomes as CalibrationResults
    indexing into them: embed `[i.question for i in items]` and pass both to `build_table`."""
    wanted = set(models)
    by_item: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        if o.model in wanted:
            by_item.setdefault((o.dataset, o.item), []).append(o)
    kept = [item for item in items if (item.dataset, item.id) in by_item]
    results = [
        CalibrationResult(row, o.model, o.correct)
        for row, item in enumerate(kept)
        for o in by_item[(item.dataset, item.id)]
    ]
    return kept, results
