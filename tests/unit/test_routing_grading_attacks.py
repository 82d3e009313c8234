"""A peer's code answer attacks the node that grades it: it reaches for the node's files, its network and its
processes, or forges a pass. Each test plays one attack with real subprocesses, as calibration runs them."""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import attack_grading_sandbox as hostile
from bench.attack_grading_sandbox import DOUBLE, FORGERIES, KILL_THE_GRADER, RIGHT, fenced, unseen
from core.identity import KEY_FILE
from routing.grading import grade
from routing.sandbox import SandboxUnavailable
from swarm import calibrate
from swarm.errors import SwarmError


@pytest.fixture
def data_dir_in_home() -> Iterator[Path]:
    with hostile.data_dir_in_home() as data_dir:
        yield data_dir


@pytest.mark.parametrize(
    ("what", "probe"),
    [
        ("the node's identity key", "open({key!r}, 'rb').read()"),
        ("a file in the node's data dir", "open({ledger!r}, 'rb').read()"),
        ("the user's home", "assert {name!r} in os.listdir({home!r})"),
        ("the grader's process", "os.kill({pid}, 0)"),
    ],
)
def test_the_code_cannot_reach_the_graders_files_or_processes(
    data_dir_in_home: Path, what: str, probe: str
) -> None:
    probe = probe.format(
        key=str(data_dir_in_home / KEY_FILE),
        ledger=str(data_dir_in_home / "ledger.sqlite"),
        name=data_dir_in_home.parent.name,
        home=str(Path.home()),
        pid=os.getpid(),
    )
    assert grade(DOUBLE, unseen(probe)), f"the code reached {what}"


def test_the_code_cannot_open_a_connection_to_loopback() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        probe = f"socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'identity.key')"
        graded = grade(DOUBLE, unseen(probe))
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()[0].close()  # nobody knocked
    assert graded, "the code connected to 127.0.0.1"


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_pass_is_graded_wrong(forgery: str) -> None:
    item, code = FORGERIES[forgery]
    assert grade(item, fenced(RIGHT))  # the item is one a right answer passes
    assert not grade(item, fenced(code)), forgery


def test_the_code_cannot_kill_the_grader() -> None:
    run = hostile.grade_in_a_process_of_its_own(fenced(KILL_THE_GRADER))
    assert run.returncode != -signal.SIGKILL, "the code under test killed the grader"
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) is False


def test_without_bubblewrap_code_is_refused_rather_than_run_unisolated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no bwrap on the PATH
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        grade(DOUBLE, fenced(RIGHT))


def test_a_bwrap_that_cannot_isolate_refuses_the_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """As where the kernel refuses unprivileged user namespaces: bwrap is there, but builds no sandbox."""
    bwrap = tmp_path / "bwrap"
    bwrap.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    bwrap.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxUnavailable, match="No permissions to create new namespace"):
        grade(DOUBLE, fenced(RIGHT))


async def test_calibrating_on_code_without_a_sandbox_stops_before_asking_a_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SwarmError, match=r"cannot grade code answers: .*bubblewrap"):  # not: node unreachable
        await calibrate.run(
            "http://127.0.0.1:9", ["humaneval"], limit=1, store_path=tmp_path / "results.jsonl"
        )
