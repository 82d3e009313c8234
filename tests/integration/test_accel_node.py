"""Acceleration on a real node process: profiling fills the history and checks every method's lossless
claim, requests are recorded with the method they ran with, and what was learnt survives a restart."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from accel.methods import LLAMACPP
from testnet.process import NodeProcess

MODEL = "smollm2-135m-instruct"
KINDS = "repeat-list,question"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    directory = tmp_path_factory.mktemp("accel")
    args = ("--model", MODEL, "--context-length", "1024", "--no-ledger", "--accel-exploration", "0")
    with NodeProcess(directory / "node", *args, accel=True) as process:
        yield process


def swarm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "swarm", *args], capture_output=True, text=True, timeout=600)


def test_profiling_runs_every_method_and_checks_its_claims(node: NodeProcess) -> None:
    done = swarm("node", "profile", "--node", node.url, "--per-kind", "1", "--kinds", KINDS)
    assert done.returncode == 0, done.stderr
    for m in LLAMACPP[1:]:
        assert m.name in done.stdout
    assert "BROKEN" not in done.stdout  # every lossless method kept greedy output, from a cold cache
    summary = httpx.get(f"{node.url}/v1/accel").json()
    assert summary["records"] == 2 * len(LLAMACPP)  # two tasks, every method, the default included
    assert {row["model"] for row in summary["learned"]} == {MODEL}
    assert {m["name"] for m in summary["methods"][MODEL]} == {m.name for m in LLAMACPP}
    shown = swarm("node", "accel", "--node", node.url)
    assert shown.returncode == 0 and MODEL in shown.stdout and "PICKS" in shown.stdout


def test_requests_are_recorded_with_a_lossless_method(node: NodeProcess) -> None:
    before = httpx.get(f"{node.url}/v1/accel").json()["records"]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Repeat: a, b, c"}], "max_tokens": 12}
    for stream in (False, True):
        reply = httpx.post(f"{node.url}/v1/chat/completions", json={**body, "stream": stream}, timeout=120)
        assert reply.status_code == 200
    summary = httpx.get(f"{node.url}/v1/accel").json()
    assert summary["records"] == before + 2
    lossless = {m.name for m in LLAMACPP if m.lossless}
    assert all(r["method"] in lossless for r in summary["recent"][-2:])


def test_a_bad_profile_request_is_refused(node: NodeProcess) -> None:
    bad = httpx.post(f"{node.url}/v1/accel/profile", json={"kinds": ["sonnets"]})
    assert bad.status_code == 400 and "sonnets" in bad.json()["error"]["message"]
    unknown = httpx.post(f"{node.url}/v1/accel/profile", json={"models": ["nope"]})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"


def test_what_was_learnt_survives_a_restart(node: NodeProcess, tmp_path: Path) -> None:
    learned = httpx.get(f"{node.url}/v1/accel").json()
    assert (node.data_dir / "accel" / "learner.json").exists()
    node.stop()
    node.start(120)
    again = httpx.get(f"{node.url}/v1/accel").json()
    assert again["records"] == learned["records"]
    assert again["learned"] == learned["learned"]
