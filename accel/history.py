"""A node's history of served requests: which acceleration method ran each, and how fast it went.

Kept in SQLite in WAL mode, owner-only (0600 in a 0700 folder): every write is
one transaction, so a failed one (a full disk) leaves the rows as they were.
The table is bounded: a write that takes it past `max_rows` drops the oldest
rows in the same transaction. Features are stored as JSON, so records read
back equal the ones written.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accel.features import TaskFeatures
from core.storage import open_sqlite

MAX_ROWS = 50_000
_COLUMNS = "model, backend, method, features, latency_s, ttft_s, tokens_per_s, output_tokens, matched, at"


@dataclass(frozen=True, slots=True)
class Record:
    features: TaskFeatures
    method: str
    latency_s: float
    ttft_s: float | None
    tokens_per_s: float  # output tokens / generation time
    output_tokens: int
    matched: bool | None  # the output was identical to the reference method's, when that is known
    at: float  # unix time


class History:
    def __init__(self, path: Path | None, *, max_rows: int = MAX_ROWS) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.max_rows = max_rows
        if path is None:
            self._db = sqlite3.connect(":memory:", isolation_level=None)
        else:
            self._db = open_sqlite(path, synchronous="FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS records (id INTEGER PRIMARY KEY, model TEXT NOT NULL, "
            "backend TEXT NOT NULL, method TEXT NOT NULL, features TEXT NOT NULL, latency_s REAL NOT NULL, "
            "ttft_s REAL, tokens_per_s REAL NOT NULL, output_tokens INTEGER NOT NULL, matched INTEGER, "
            "at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS records_by_model ON records (model, backend)")

    def close(self) -> None:
        self._db.close()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM records").fetchone()[0]

    def add(self, record: Record) -> None:
        self.add_many([record])

    def add_many(self, records: Iterable[Record]) -> None:
        """Store the records, then drop the oldest beyond `max_rows`, all in one transaction: on an error
        (sqlite3.Error, raised) nothing is stored or dropped."""
        rows = [_row(r) for r in records]
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(f"INSERT INTO records ({_COLUMNS}) VALUES ({', '.join('?' * 10)})", rows)
            self._db.execute(
                "DELETE FROM records WHERE id <= (SELECT id FROM records ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (self.max_rows,),
            )
        except BaseException:
            # Some errors (a full disk among them) roll the transaction back themselves.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def recent(self, n: int) -> list[Record]:
        """The last n records, oldest first."""
        query = f"SELECT {_COLUMNS} FROM (SELECT * FROM records ORDER BY id DESC LIMIT ?) ORDER BY id"
        return [_record(row) for row in self._db.execute(query, (n,))]

    def records(self, model: str | None = None, backend: str | None = None) -> list[Record]:
        """The records, oldest first, of one model and/or backend or of all."""
        query = (
            f"SELECT {_COLUMNS} FROM records "
            "WHERE (?1 IS NULL OR model = ?1) AND (?2 IS NULL OR backend = ?2) ORDER BY id"
        )
        return [_record(row) for row in self._db.execute(query, (model, backend))]


def _row(r: Record) -> tuple[Any, ...]:
    features = json.dumps(dataclasses.asdict(r.features), separators=(",", ":"))
    matched = None if r.matched is None else int(r.matched)
    return (
        r.features.model,
        r.features.backend,
        r.method,
        features,
        r.latency_s,
        r.ttft_s,
        r.tokens_per_s,
        r.output_tokens,
        matched,
        r.at,
    )


def _record(row: tuple[Any, ...]) -> Record:
    _, _, method, features, latency_s, ttft_s, tokens_per_s, output_tokens, matched, at = row
    return Record(
        features=TaskFeatures(**json.loads(features)),
        method=method,
        latency_s=latency_s,
        ttft_s=ttft_s,
        tokens_per_s=tokens_per_s,
        output_tokens=output_tokens,
        matched=None if matched is None else bool(matched),
        at=at,
    )
