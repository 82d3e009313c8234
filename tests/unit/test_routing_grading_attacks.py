"""A peer's code answer attacks the node that grades it: it reaches for the node's files, its network and its
processes, or forges a pass. Each test plays one attack with real subprocesses, as calibration runs them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.identity import KEY_FILE, Identity
from routing.datasets import Item
from routing.grading import grade
from routing.sandbox import SandboxUnavailable
from swarm import calibrate
from swarm.errors import SwarmError


def code_item(test: str, entry_point: str = "double") -> Item:
    return Item("attacks", entry_point, "code", "", (), (), entry_point=entry_point, test=test)


DOUBLE = code_item("def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-3) == -6\n")
# Compared through abs(), which the code under test could rebind in a shared interpreter.
DOUBLE_BY_ABS = code_item("def check(candidate):\n    assert abs(candidate(2) - 4) < 1e-9\n")
RIGHT = "def double(x):\n    return 2 * x\n"


def fenced(code: str) -> str:
    return f"```python\n{textwrap.dedent(code)}```"


def unseen(probe: str) -> str:
    """A right answer only while `probe` fails: graded right means the code ran and could not do it."""
    return fenced(
        "import os, socket\n"
        "try:\n"
        f"    {probe}\n"
        "    done = True\n"
        "except Exception:\n"
        "    done = False\n\n"
        "def double(x):\n"
        "    return 0 if done else 2 * x\n"
    )


@pytest.fixture
def data_dir_in_home() -> Iterator[Path]:
    """A node's data dir where a node keeps it, in the user's home: a real identity key and a ledger."""
    root = Path.home() / f".grading-attack-{uuid.uuid4().hex}"
    data_dir = root / "node"
    Identity.load_or_create(data_dir)
    (data_dir / "ledger.sqlite").write_bytes(b"SQLite format 3\x00")
    try:
        yield data_dir
    finally:
        shutil.rmtree(root)


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


# Wrong answers (double returns 0) that each forge a pass another way.
FORGERIES = {
    "sys.exit(47) before the tests": "import sys\n\ndef double(x):\n    return 0\n\nsys.exit(47)\n",
    "os._exit(47) before the tests": "import os\n\ndef double(x):\n    return 0\n\nos._exit(47)\n",
    "SystemExit(47) raised inside the test": "def double(x):\n    raise SystemExit(47)\n",
    "an exception hook that exits 47": (
        "import os, sys\nsys.excepthook = lambda *exc: os._exit(47)\n\ndef double(x):\n    return 0\n"
    ),
    "an exit handler that exits 47": (
        "import atexit, os\natexit.register(os._exit, 47)\n\ndef double(x):\n    return 0\n"
    ),
    "a result equal to everything": (
        "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
        "def double(x):\n    return Anything()\n"
    ),
    "the answers read out of the tests": (
        "import os, re, sys\n\n"
        "seen = ''.join(open(os.path.join(os.path.dirname(sys.argv[0]), f)).read()\n"
        "               for f in os.listdir(os.path.dirname(sys.argv[0]) or '.') if f.endswith('.py'))\n"
        "expected = {int(a): int(b) for a, b in re.findall(r'candidate\\((-?\\d+)\\) == (-?\\d+)', seen)}\n\n"
        "def double(x):\n    return expected.get(x)\n"
    ),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_pass_is_graded_wrong(forgery: str) -> None:
    assert not grade(DOUBLE, fenced(FORGERIES[forgery])), forgery


def test_the_pass_line_written_everywhere_is_not_a_pass() -> None:
    """The line the tests' sandbox prints when they pass, written by the code to every descriptor it has."""
    answer = (
        "import os\n"
        "for fd in range(256):\n"
        "    try:\n"
        "        os.write(fd, b'passed\\n')\n"
        "    except OSError:\n"
        "        pass\n\n"
        "def double(x):\n    return 0\n"
    )
    assert not grade(DOUBLE, fenced(answer))


def test_rebinding_builtins_does_not_change_the_tests() -> None:
    assert grade(DOUBLE_BY_ABS, fenced(RIGHT))
    rebound = "import builtins\nbuiltins.abs = lambda value: 0\n\ndef double(x):\n    return 0\n"
    assert not grade(DOUBLE_BY_ABS, fenced(rebound)), "abs() rebound by the code under test"


def test_the_code_cannot_kill_the_grader() -> None:
    """The grader in a process of its own, so that the attack, if it lands, kills that one and not pytest."""
    answer = fenced(
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n\ndef double(x):\n    return 0\n"
    )
    grader = (
        "import json, sys\n"
        "from routing.grading import grade\n"
        "from tests.unit.test_routing_grading_attacks import DOUBLE\n"
        "print(json.dumps(grade(DOUBLE, sys.argv[1])))\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", grader, answer], cwd=root, capture_output=True, text=True, timeout=60
    )
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
