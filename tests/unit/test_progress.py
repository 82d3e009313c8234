"""Progress: what the layers below report through their callbacks, and what the CLI draws of it (on stderr:
bars on a terminal or when asked, a few plain lines elsewhere, never anything on stdout)."""

from __future__ import annotations

import io
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from node import config as node_config
from node import daemon
from swarm import cli, progress
from swarm.progress import Bars, waiting
from testnet import testnet
from testnet.testnet import CONVERGED, STARTED, TestnetNode

ESC = "\x1b"


def test_off_a_terminal_a_short_wait_writes_its_end_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARM_PROGRESS", raising=False)
    with Bars() as bars:
        for done in range(0, 101, 5):
            bars.update("questions", done, 100)
        bars.update("questions", 100, 100)  # said once
        bars.update("bytes", 500_000_000, 500_000_000, unit="bytes")
        bars.update("open-ended", 3, None)
    assert capsys.readouterr() == ("", "questions: 100/100\nbytes: 500.0 MB of 500.0 MB\n")


def test_off_a_terminal_a_long_wait_writes_a_line_a_tenth(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARM_PROGRESS", raising=False)
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)  # as if every update came long after the last
    with Bars() as bars:
        for done in range(0, 101, 5):
            bars.update("questions", done, 100)
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f"questions: {n}/100" for n in range(10, 101, 10)]


def test_progress_can_be_turned_off(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_PROGRESS", "0")
    with Bars() as bars, waiting("a request"):
        bars.update("questions", 5, 10)
    assert capsys.readouterr() == ("", "")


def test_asked_for_bars_are_drawn_on_stderr_and_ignored_once_closed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_PROGRESS", "1")
    bars = Bars()
    bars.update("nodes started", 3, 3)
    bars.close()
    bars.update("nodes started", 4, 4)
    out, err = capsys.readouterr()
    assert out == ""
    assert ESC in err and "nodes started" in err and "3/3" in err and "4/4" not in err


def test_timing_bars_draw_at_their_updates_with_no_thread_of_their_own(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_PROGRESS", "1")
    threads = threading.active_count()
    with Bars(timing=True) as bars:
        bars.update("decisions", 1, 2)
        assert threading.active_count() == threads
        bars.update("decisions", 2, 2)  # done: drawn at once, however soon after the last
    assert "2/2" in capsys.readouterr().err


async def test_bars_close_at_the_end_of_an_async_with(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_PROGRESS", "1")
    async with Bars() as bars:
        bars.update("requests", 1, 3)
    bars.update("requests", 2, 3)  # closed: ignored
    err = capsys.readouterr().err
    assert "1/3" in err and "2/3" not in err


def test_forced_bars_leave_the_testnet_table_on_stdout_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Net:
        def __init__(self, nodes: int, *args: Any, **kwargs: Any) -> None:
            self.directory, self.state_path, self.count = tmp_path, tmp_path / "testnet.json", nodes

        def up(self, on_progress: testnet.Progress) -> list[TestnetNode]:
            for step in (STARTED, CONVERGED):
                for done in range(self.count + 1):
                    on_progress(step, done, self.count)
            return [
                TestnetNode(f"node-{i}", f"http://127.0.0.1:{9000 + i}", f"peer{i}", "", ("m",), 1, "", "")
                for i in range(self.count)
            ]

    monkeypatch.setenv("SWARM_PROGRESS", "1")
    monkeypatch.setattr(testnet, "Testnet", Net)
    assert cli.main(["testnet", "up", "--nodes", "2", "--dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1:] == [
        f"node-{i}  peer{i:<50} http://127.0.0.1:{9000 + i}    m" for i in range(2)
    ]
    assert ESC not in out and "nodes that see all peers" in err


def test_forced_spinner_leaves_the_profile_table_on_stdout_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    report = {
        "methods": [
            {"model": "m", "method": "default", "speedup": 1.0, "matched": 2, "runs": 2, "claim_holds": None}
        ],
        "seconds": 3.0,
        "records": 2,
    }

    class Client:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def __enter__(self) -> Client:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def profile(self, **kwargs: Any) -> dict[str, Any]:
            return report

    monkeypatch.setenv("SWARM_PROGRESS", "1")
    monkeypatch.setattr(cli, "Client", Client)
    assert cli.main(["node", "profile"]) == 0
    out, err = capsys.readouterr()
    assert ESC not in out and out.splitlines()[1].split()[:3] == ["m", "default", "1.00x"]
    assert "profiling" in err


def test_convergence_reports_how_many_nodes_see_all_peers(monkeypatch: pytest.MonkeyPatch) -> None:
    net = testnet.Testnet(3)
    net.nodes = [TestnetNode(f"node-{i}", f"url{i}", f"peer{i}", "", (), 1, "", "") for i in range(3)]
    everyone = {"peer0", "peer1", "peer2"}
    polls = iter([[set(), set(), set()], [everyone, set(), set()], [everyone, everyone, everyone]])
    tables: dict[str, set[str]] = {}

    def peer_ids(url: str) -> set[str]:
        if url == "url0":
            tables.update(zip(("url0", "url1", "url2"), next(polls), strict=True))
        return tables[url]

    monkeypatch.setattr(testnet, "_peer_ids", peer_ids)
    monkeypatch.setattr(testnet.time, "sleep", lambda seconds: None)
    seen: list[tuple[str, int, int]] = []
    net.wait_converged(10, lambda *report: seen.append(report))
    assert seen == [(CONVERGED, 0, 3), (CONVERGED, 1, 3), (CONVERGED, 3, 3)]


def test_the_node_reports_its_models_loaded_one_by_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    models = tuple(node_config.model_from_table({"model": name}) for name in ("a.gguf", "b.gguf"))
    config = node_config.load(None, models=models, data_dir=tmp_path)
    loading: list[str] = []

    def load_engine(model: node_config.ModelConfig, *args: Any) -> Any:
        loading.append(model.model)
        return object()

    monkeypatch.setattr(daemon, "load_engine", load_engine)
    seen: list[tuple[int, int, list[str]]] = []
    daemon._load_engines(config, lambda done, total: seen.append((done, total, list(loading))), None)
    assert seen == [(0, 2, []), (1, 2, ["a.gguf"]), (2, 2, ["a.gguf", "b.gguf"])]


def test_node_log_lines_go_to_stderr_as_it_is_when_they_are_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A progress display swaps sys.stderr for its own while it runs; the log follows it there.
    handler = daemon._Stderr()
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stderr", swapped)
    handler.emit(logging.LogRecord("swarm.node", logging.INFO, "", 0, "loading a.gguf", None, None))
    assert swapped.getvalue() == "loading a.gguf\n"
