"""Progress of the CLI's and the benchmarks' long waits, on stderr, drawn by rich.

Bars are drawn where someone watches: when stderr is a terminal, or when SWARM_PROGRESS=1 asks for them.
Elsewhere (logs, CI, tests) a counted wait writes a plain line when it is done, and on the way one at a
tenth at most every PLAIN_EVERY_S seconds; an open-ended wait writes nothing. So what parses the output
finds what it always did; SWARM_PROGRESS=0 writes nothing at all.
The library layers only call back (`on_progress(...)`); this is the one place that draws.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Literal

from rich.console import Console
from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

PLAIN_EVERY_S = 10.0  # a long wait still shows in a log that it moves; a short one writes its end alone
REDRAW_EVERY_S = 0.1  # how often `timing` bars are redrawn at most, as rich's own thread would


def _mode() -> Literal["bars", "lines", "off"]:
    setting = os.environ.get("SWARM_PROGRESS", "").strip()
    if setting in ("0", "1"):
        return "bars" if setting == "1" else "off"
    return "bars" if sys.stderr.isatty() else "lines"


class _Amount(ProgressColumn):
    """`3/10` or `120.5/491.4 MB`, by the row's unit; nothing on a spinner that counts nothing."""

    def __init__(self) -> None:
        super().__init__()
        self._count, self._bytes = MofNCompleteColumn(), DownloadColumn()

    def render(self, task: Task) -> Text:
        if task.total is None and not task.completed:
            return Text("")
        return (self._bytes if task.fields.get("unit") == "bytes" else self._count).render(task)


class _Left(TimeRemainingColumn):
    """The time left, where there is a total to reckon it from."""

    def render(self, task: Task) -> Text:
        return Text("") if task.total is None else super().render(task)


class Bars:
    """Rows of progress on stderr, one per wait, each made at its first `update`.

    The display starts with the first row and stops at `close` or at the end of the `with` block;
    `transient` ones vanish then, for a wait whose result is printed next. While it runs, what the
    process writes to stderr (log lines) shows above the bars, and so does stdout when it is a
    terminal; stdout sent anywhere else is left alone. `timing`: for a loop that times work in this
    process, no drawing thread competes with it (for the GIL, or a core): the bars are redrawn in
    `update` alone, so put the updates between the timed parts.
    """

    def __init__(self, *, transient: bool = False, timing: bool = False) -> None:
        self._mode = _mode()
        self._timing, self._drawn_at = timing, 0.0
        self._lock = threading.Lock()
        self._rows: dict[str, TaskID] = {}
        self._said: dict[str, tuple[int, float]] = {}  # row -> the tenth and the time of its last line
        self._closed = False
        self._progress = Progress(
            SpinnerColumn(finished_text="[green]✓"),
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            _Amount(),
            TimeElapsedColumn(),
            _Left(),
            console=Console(stderr=True, force_terminal=self._mode == "bars" or None),
            transient=transient,
            auto_refresh=not timing,
            redirect_stdout=sys.stdout.isatty(),
            redirect_stderr=True,
            disable=self._mode != "bars",
        )

    def update(self, row: str, done: int, total: int | None, *, unit: str = "") -> None:
        """Row `row` has `done` of `total` (None: not known, a spinner) things through; `unit` "bytes"
        shows them as sizes. Safe from any thread; after `close`, ignored."""
        with self._lock:
            if self._closed:
                return
            if self._mode == "lines":
                self._plain(row, done, total, unit)
            if self._mode != "bars":
                return
            if row not in self._rows:
                if not self._rows:
                    self._progress.start()
                self._rows[row] = self._progress.add_task(row, total=total, unit=unit)
            self._progress.update(self._rows[row], completed=done, total=total)
            now = time.monotonic()
            if self._timing and (done == total or now - self._drawn_at >= REDRAW_EVERY_S):
                self._drawn_at = now
                self._progress.refresh()

    def _plain(self, row: str, done: int, total: int | None, unit: str) -> None:
        if not total:
            return
        now, tenth = time.monotonic(), done * 10 // total
        said_tenth, said_at = self._said.setdefault(row, (0, now))
        if tenth > said_tenth and (done >= total or now - said_at >= PLAIN_EVERY_S):
            self._said[row] = (tenth, now)
            amount = f"{decimal(done)} of {decimal(total)}" if unit == "bytes" else f"{done}/{total}"
            print(f"{row}: {amount}", file=sys.stderr, flush=True)

    def close(self) -> None:
        with self._lock:
            if self._rows and not self._closed:
                self._progress.stop()
            self._closed = True

    def __enter__(self) -> Bars:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # Also an async context manager, to sit in one `async with` beside the clients of a loop it follows.
    async def __aenter__(self) -> Bars:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


@contextmanager
def waiting(what: str) -> Iterator[None]:
    """A spinner with the time elapsed while one blocking call runs (a request the server answers only
    when all its work is done); gone when it returns. Nothing at all off a terminal."""
    with Bars(transient=True) as bars:
        bars.update(what, 0, None)
        yield
