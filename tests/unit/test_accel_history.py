"""The request history: exact round trips, a bounded table, reopening, owner-only files, and failed writes
that change nothing."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from accel.features import TaskFeatures
from accel.history import History, Record


def record(i: int, *, model: str = "m", backend: str = "llamacpp", method: str = "default") -> Record:
    features = TaskFeatures(
        model=model,
        backend=backend,
        prompt_tokens=10 + i,
        max_tokens=256,
        chat=i % 2 == 0,
        code_share=1 / 3,
        repetition=0.1 + i / 7,
        edit_request=i % 3 == 0,
        cluster=None if i % 2 else i,
        concurrency=i % 4,
        hardware="8-core cpu",
    )
    return Record(
        features=features,
        method=method,
        latency_s=1.0 + i / 3,
        ttft_s=None if i % 5 == 0 else 0.1 * i,
        tokens_per_s=20.0 + i / 9,
        output_tokens=100 + i,
        matched=(None, True, False)[i % 3],
        at=1_700_000_000.123456 + i,
    )


def add_trigger(path: Path, sql: str) -> None:
    """Make writes fail the way a full disk would, through a second connection as another process could."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(sql)
    db.close()


def test_records_round_trip_exactly(tmp_path: Path) -> None:
    written = [record(i) for i in range(12)]
    history = History(tmp_path / "accel" / "history.db")
    history.add(written[0])
    history.add_many(written[1:])
    assert len(history) == 12
    assert history.records() == written
    history.close()


def test_records_filter_by_model_and_backend() -> None:
    history = History(None)
    history.add_many([record(0), record(1, model="other"), record(2, backend="vllm"), record(3)])
    assert [r.at for r in history.records("m", "llamacpp")] == [record(0).at, record(3).at]
    assert [r.features.model for r in history.records(model="other")] == ["other"]
    assert [r.features.backend for r in history.records(backend="vllm")] == ["vllm"]
    assert len(history.records()) == 4


def test_the_table_is_bounded_by_dropping_the_oldest() -> None:
    history = History(None, max_rows=5)
    for i in range(8):
        history.add(record(i))
    assert len(history) == 5
    assert history.records() == [record(i) for i in range(3, 8)]
    history.add_many([record(i) for i in range(8, 20)])
    assert history.records() == [record(i) for i in range(15, 20)]


@pytest.mark.usefixtures("wide_umask")
def test_reopening_keeps_the_records_and_the_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "accel" / "history.db"
    history = History(path)
    history.add_many([record(i) for i in range(3)])
    history.close()
    history = History(path)
    assert history.records() == [record(i) for i in range(3)]
    history.add(record(3))
    assert len(history) == 4
    files = {file.name: stat.S_IMODE(file.stat().st_mode) for file in path.parent.iterdir()}
    assert files == dict.fromkeys(("history.db", "history.db-wal", "history.db-shm"), 0o600)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    history.close()


def test_a_failed_write_stores_nothing(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    history = History(path)
    history.add_many([record(i) for i in range(3)])
    add_trigger(
        path,
        "CREATE TRIGGER full BEFORE INSERT ON records WHEN NEW.method = 'boom' "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
    )
    with pytest.raises(sqlite3.Error, match="disk is full"):
        history.add_many([record(3), record(4, method="boom"), record(5)])
    assert history.records() == [record(i) for i in range(3)]
    history.add(record(6))  # the store is still usable
    assert history.records() == [record(i) for i in (0, 1, 2, 6)]
    history.close()


def test_a_failed_trim_undoes_the_insert_too(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    history = History(path, max_rows=3)
    history.add_many([record(i) for i in range(3)])
    add_trigger(path, "CREATE TRIGGER stuck BEFORE DELETE ON records BEGIN SELECT RAISE(ABORT, 'stuck'); END")
    with pytest.raises(sqlite3.Error, match="stuck"):
        history.add(record(3))
    history.close()
    history = History(path, max_rows=3)
    assert history.records() == [record(i) for i in range(3)]
    history.close()


def test_max_rows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        History(None, max_rows=0)
