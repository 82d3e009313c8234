"""Node processes on the out-of-process backends: an OpenAI-compatible server by URL, and a supervised
server process started the way `vllm serve` is (llama.cpp's own server standing in for vLLM on CPU).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

import swarm
from testnet.process import NodeProcess
from tests.support.observe import wait_for

MODEL = "smollm2-135m-instruct"
SERVER_SCRIPT = Path(__file__).resolve().parents[1] / "support" / "llamacpp_server.py"
CHAT = {"messages": [{"role": "user", "content": "What is 2+2?"}], "max_tokens": 16, "temperature": 0}


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> NodeProcess:
    with NodeProcess(
        tmp_path_factory.mktemp("upstream") / "data", "--model", MODEL, "--context-length", "512"
    ) as n:
        yield n


def test_openai_backend_serves_another_servers_model(upstream: NodeProcess, tmp_path: Path) -> None:
    args = ("--backend", "openai", "--url", f"{upstream.url}/v1", "--model", MODEL)
    with NodeProcess(tmp_path / "proxy", *args) as proxy, swarm.Client(proxy.url) as client:
        cards = client.models()
        assert [(c.id, c.backend, c.context_length) for c in cards] == [
            (MODEL, "openai", 512),
            ("swarm", "router", None),
        ]
        answer = client.chat(CHAT["messages"], model=MODEL, max_tokens=16, temperature=0)
        streamed = "".join(
            c.text for c in client.stream_chat(CHAT["messages"], model=MODEL, max_tokens=16, temperature=0)
        )
        direct = httpx.post(f"{upstream.url}/v1/chat/completions", json={"model": MODEL, **CHAT}).json()
        assert answer.text == streamed == direct["choices"][0]["message"]["content"]
        too_long = httpx.post(
            f"{proxy.url}/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "word " * 2000}]},
        )
        assert too_long.status_code == 400 and too_long.json()["error"]["code"] == "context_length_exceeded"


def test_openai_backend_reports_a_dead_upstream_as_503(tmp_path: Path) -> None:
    with NodeProcess(tmp_path / "up", "--model", MODEL, "--context-length", "512") as up:
        args = ("--backend", "openai", "--url", f"{up.url}/v1", "--model", MODEL)
        with NodeProcess(tmp_path / "proxy", *args) as proxy:
            up.process.send_signal(signal.SIGKILL)
            up.process.wait()
            response = httpx.post(
                f"{proxy.url}/v1/chat/completions", json={"model": MODEL, **CHAT}, timeout=30
            )
            assert response.status_code == 503, response.text
            error = response.json()["error"]
            assert error["code"] == "engine_unavailable" and up.url.split("//")[1] in error["message"]
            assert int(response.headers["retry-after"]) >= 1
            assert httpx.get(f"{proxy.url}/health").status_code == 200


def test_supervised_engine_process_is_restarted_after_it_dies(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    command = [sys.executable, str(SERVER_SCRIPT), "--model", "{model}", "--port", "{port}", "--ctx", "1024"]
    config.write_text(
        f'[[models]]\nmodel = "{MODEL}"\nbackend = "vllm"\ncontext_length = 1024\n'
        f"command = {json.dumps(command)}\n"
    )
    with NodeProcess(tmp_path / "node", "--config", str(config)) as node:
        url = f"{node.url}/v1/chat/completions"
        first = httpx.post(url, json={"model": MODEL, **CHAT}, timeout=60)
        assert first.status_code == 200, first.text
        assert [c["backend"] for c in httpx.get(f"{node.url}/v1/models").json()["data"]] == ["vllm", "router"]
        (engine_pid,) = _children(node.process.pid)
        os.kill(engine_pid, signal.SIGKILL)
        # While it is down the node says so at once, with a hint when to retry; it never hangs.
        refused = httpx.post(url, json={"model": MODEL, **CHAT}, timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "engine_unavailable"
        wait_for(
            lambda: httpx.post(url, json={"model": MODEL, **CHAT}, timeout=30).status_code == 200,
            60,
            "the engine process to come back",
        )
        (new_pid,) = _children(node.process.pid)
        assert new_pid != engine_pid
        again = httpx.post(url, json={"model": MODEL, **CHAT}, timeout=60).json()
        assert again["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
        node.stop()
    wait_for(lambda: not Path(f"/proc/{new_pid}").exists(), 15, "the engine process to stop with the node")
