"""Routing on a real 3-node testnet: `swarm calibrate` on a slice, the table spreads, questions go to experts.

The slice: four HumanEval problems put to every model, and six civics
questions put only to SmolLM2 and Gemma (`--models`), the way an operator
calibrates a network piece by piece. Qwen2.5-Coder is then the one model with
a record on code, and the one model with none on civics, where it only gets
a prior that ranks it below every calibrated model: code questions must go to
it, civics questions must not.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import swarm
from routing import datasets
from testnet.testnet import Testnet
from tests.support.observe import wait_for

ROUTE = swarm.SwarmOptions(mode="route")
SMOLLM, GEMMA, QWEN = "smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"


def calibrate(node: str, store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "swarm", "calibrate", "--node", node, "--store", str(store), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Testnet:
    with Testnet(3, [SMOLLM, GEMMA, QWEN], tmp_path_factory.mktemp("routing")) as testnet:
        yield testnet


@pytest.fixture(scope="module")
def calibrated(net: Testnet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    store = tmp_path_factory.mktemp("calibration") / "results.jsonl"
    calibrate(net.nodes[0].url, store, "--dataset", "humaneval", "--limit", "4")
    only = f"{SMOLLM},{GEMMA}"
    done = calibrate(net.nodes[0].url, store, "--dataset", "civics", "--limit", "6", "--models", only)
    version = re.search(r"routing table ([0-9a-f]{16})", done.stdout)
    assert version is not None, done.stdout
    return store, version.group(1)


def test_the_table_reaches_every_node(net: Testnet, calibrated: tuple[Path, str]) -> None:
    _, version = calibrated

    def versions() -> set[str | None]:
        return {httpx.get(f"{n.url}/v1/routing/table").json().get("version") for n in net.nodes}

    wait_for(lambda: versions() == {version}, timeout=20, what=f"every node to hold table {version}")
    summary = httpx.get(f"{net.nodes[2].url}/v1/routing/table").json()
    assert summary["models"][QWEN]["questions"] == 4  # code only
    assert summary["models"][SMOLLM]["questions"] == 10


def test_questions_go_to_different_experts_by_topic(net: Testnet, calibrated: tuple[Path, str]) -> None:
    _, version = calibrated
    held_out = {name: datasets.split(datasets.load(name))[1][:3] for name in ("humaneval", "civics")}
    answered = {}
    with swarm.Client(net.nodes[1].url) as client:  # a node that took part in none of the calibration
        for name, items in held_out.items():
            for item in items:
                answer = client.chat(item.question, model="swarm", max_tokens=4, temperature=0, swarm=ROUTE)
                assert answer.swarm is not None and answer.swarm.table_version == version
                answered[(name, item.id)] = answer.swarm.model
                assert answer.model == answer.swarm.model
    code = {m for (name, _), m in answered.items() if name == "humaneval"}
    civics = {m for (name, _), m in answered.items() if name == "civics"}
    assert code == {QWEN}, answered
    assert civics <= {SMOLLM, GEMMA}, answered


def test_a_routed_answer_streams_from_the_expert_on_another_node(
    net: Testnet, calibrated: tuple[Path, str]
) -> None:
    code = datasets.split(datasets.load("humaneval"))[1][0]
    with swarm.Client(net.nodes[0].url) as client:
        chunks = list(
            client.stream_chat(code.question, model="swarm", max_tokens=16, temperature=0, swarm=ROUTE)
        )
    first = chunks[0].swarm
    assert first is not None and first.model == QWEN
    assert first.peer_id == net.nodes[2].peer_id  # forwarded to the node that hosts it
    assert "".join(c.text for c in chunks).strip()


def test_calibration_stores_every_answer_and_resumes(net: Testnet, calibrated: tuple[Path, str]) -> None:
    store, _ = calibrated
    outcomes = [json.loads(line) for line in store.read_text().splitlines()]
    pairs = {(o["dataset"], o["model"]) for o in outcomes}
    assert pairs == {
        ("humaneval", SMOLLM),
        ("humaneval", GEMMA),
        ("humaneval", QWEN),
        ("civics", SMOLLM),
        ("civics", GEMMA),
    }
    assert len(outcomes) == 4 * 3 + 6 * 2
    again = calibrate(net.nodes[0].url, store, "--dataset", "humaneval", "--limit", "4")
    assert "asked 0, reused 12" in again.stdout
    assert len(store.read_text().splitlines()) == len(outcomes)
    # A table rebuilt from the same answers is a newer table: it replaces the one the network holds.
    rebuilt = re.search(r"routing table ([0-9a-f]{16}): .*; installed", again.stdout)
    assert rebuilt is not None, again.stdout
