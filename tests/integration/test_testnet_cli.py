"""`swarm testnet up / status / down` as a person runs them: separate commands, nodes left running between."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

MODEL = "smollm2-135m-instruct"


def swarm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "swarm", *args], capture_output=True, text=True, timeout=300)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_up_status_down(tmp_path: Path) -> None:
    directory = str(tmp_path / "net")
    up = swarm("testnet", "up", "--nodes", "2", "--models", f"{MODEL},{MODEL}", "--dir", directory)
    try:
        assert up.returncode == 0, up.stderr
        assert "node-0" in up.stdout and "node-1" in up.stdout
        status = swarm("testnet", "status", "--json", "--dir", directory)
        assert status.returncode == 0, status.stderr
        nodes = json.loads(status.stdout)
        assert [n["models"] for n in nodes] == [[MODEL], [MODEL]]
        assert all(n["state"] == "ok" and n["peers"] == 1 for n in nodes)
        for node in nodes:
            assert httpx.get(f"{node['url']}/health").json()["node_id"] == node["peer_id"]
        again = swarm("testnet", "up", "--nodes", "2", "--dir", directory)
        assert again.returncode == 1 and "already running" in again.stderr
    finally:
        down = swarm("testnet", "down", "--dir", directory)
    assert down.returncode == 0 and "stopped 2 node(s)" in down.stderr
    assert not any(_alive(n["pid"]) for n in nodes)
    assert swarm("testnet", "status", "--dir", directory).returncode == 1
