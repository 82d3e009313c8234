"""VllmEngine and OpenAIEngine against a real OpenAI-compatible server in a child process.

vLLM needs a GPU, so the supervised command is replaced by llama.cpp's own
HTTP server (tests/support/llamacpp_server.py) serving SmolLM2: the same API,
started, health-checked, killed and restarted the way `vllm serve` is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records import GenerationRequest, Message
from node.engines.base import ContextLengthExceeded, EngineError, EngineSpec, EngineUnavailable
from node.engines.openai_http import OpenAIEngine
from node.engines.vllm import VllmEngine
from node.ports import free_port
from tests.support.streaming import Collect, assert_stream_matches_generate

SERVER = Path(__file__).resolve().parent.parent / "support" / "llamacpp_server.py"
COMMAND = [sys.executable, str(SERVER), "--model", "{model}", "--port", "{port}"]
N_CTX = 1024  # the helper server's default
# A stand-in node: it supervises a server, says the server's pid, then waits to be SIGKILLed.
NODE = f"""
import sys, threading
from node.engines.base import EngineSpec
from node.engines.vllm import VllmEngine
engine = VllmEngine(EngineSpec("orphan", sys.argv[1]), command={COMMAND!r}, log_dir=sys.argv[2])
print(engine.supervisor.pid, flush=True)
threading.Event().wait()
"""

HELLO = GenerationRequest(
    model="smol", messages=(Message("user", "Say hello."),), max_tokens=8, temperature=0.0
)
LONG = GenerationRequest(model="smol", prompt="hello world " * 1500, max_tokens=4)


def start_engine(model: Path, log_dir: Path, name: str = "smol") -> VllmEngine:
    return VllmEngine(
        EngineSpec(name, str(model)),
        command=COMMAND,
        log_dir=log_dir,
        startup_timeout=60,
        restart_backoff=0.2,
    )


def wait_for(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def engine(smollm2_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmEngine]:
    engine = start_engine(smollm2_path, tmp_path_factory.mktemp("logs"))
    yield engine
    engine.close()


@pytest.fixture
def direct(engine: VllmEngine) -> Iterator[OpenAIEngine]:
    """An OpenAIEngine pointed straight at the supervised server, context length left to discovery."""
    assert engine.supervisor.state == "ready"
    client = OpenAIEngine(EngineSpec("direct", engine.supervisor.health_url.removesuffix("/health") + "/v1"))
    yield client
    client.close()


def test_generates_and_describes_itself(engine: VllmEngine) -> None:
    generation = engine.generate(HELLO)
    assert generation.text.strip()
    assert generation.usage.prompt_tokens > 0
    assert 0 < generation.usage.completion_tokens <= 8
    assert engine.info.backend == "vllm"
    assert engine.info.context_length == N_CTX  # read from the server, not given


def test_streams(engine: VllmEngine) -> None:
    assert_stream_matches_generate(engine, HELLO)


def test_killed_process_is_restarted(engine: VllmEngine) -> None:
    pid, restarts = engine.supervisor.pid, engine.supervisor.restarts
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(EngineUnavailable, match="smol"):
        engine.generate(HELLO)
    # Until the supervisor notices the death its state still says "ready": wait for the new process.
    wait_for(lambda: engine.supervisor.pid not in (None, pid) and engine.supervisor.state == "ready")
    assert engine.supervisor.restarts == restarts + 1
    assert not alive(pid)
    assert engine.generate(HELLO).text.strip()


def test_death_mid_stream_is_unavailable(engine: VllmEngine) -> None:
    pid = engine.supervisor.pid
    assert pid is not None

    def sink(_piece: str) -> bool:
        os.kill(pid, signal.SIGKILL)
        return False  # keep reading from a server that is gone

    request = GenerationRequest(model="smol", prompt="Once upon a time", max_tokens=200, temperature=0)
    with pytest.raises(EngineUnavailable, match="went away during the request"):
        engine.stream(request, sink)
    wait_for(lambda: engine.supervisor.pid not in (None, pid) and engine.supervisor.state == "ready")
    assert engine.generate(HELLO).text.strip()


def test_child_dies_with_a_killed_node(smollm2_path: Path, tmp_path: Path) -> None:
    node = subprocess.Popen(
        [sys.executable, "-c", NODE, str(smollm2_path), str(tmp_path)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert node.stdout is not None
    child = int(node.stdout.readline())
    try:
        assert alive(child)
        node.kill()
        node.wait()
        wait_for(lambda: not alive(child), timeout=10)
    finally:
        if alive(child):  # the failure being tested: don't leave the orphan behind
            os.killpg(child, signal.SIGKILL)


def test_restart_brings_a_new_process(engine: VllmEngine) -> None:
    before, restarts = engine.supervisor.pid, engine.supervisor.restarts
    engine.restart()
    assert engine.supervisor.state == "ready"
    assert engine.supervisor.pid != before
    assert engine.supervisor.restarts == restarts + 1
    assert engine.generate(HELLO).text.strip()


def test_close_leaves_no_process(smollm2_path: Path, tmp_path: Path) -> None:
    engine = start_engine(smollm2_path, tmp_path, name="short-lived")
    pid = engine.supervisor.pid
    assert pid is not None and alive(pid)
    engine.close()
    assert engine.supervisor.state == "stopped"
    assert not alive(pid)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)  # nothing left in its process group either
    with pytest.raises(EngineUnavailable):
        engine.generate(HELLO)


def test_a_command_that_exits_gives_its_output(tmp_path: Path) -> None:
    crash = [sys.executable, "-c", "import sys; print('no CUDA GPUs are available'); sys.exit(3)"]
    started = time.monotonic()
    with pytest.raises(EngineError) as caught:
        VllmEngine(EngineSpec("broken", "some/model"), command=crash, log_dir=tmp_path, startup_timeout=60)
    assert time.monotonic() - started < 10  # noticed at once, not at the timeout
    message = str(caught.value)
    assert "no CUDA GPUs are available" in message
    assert "code 3" in message
    assert "no CUDA GPUs are available" in (tmp_path / "vllm-broken.log").read_text()


def test_a_missing_program_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="cannot run 'no-such-vllm'"):
        VllmEngine(EngineSpec("missing", "some/model"), command=["no-such-vllm", "serve"], log_dir=tmp_path)


def test_openai_engine_chat_completion_and_discovery(direct: OpenAIEngine) -> None:
    assert direct.info.context_length == N_CTX
    assert (direct.info.backend, direct.info.hardware) == ("openai", "remote")
    assert direct.generate(HELLO).text.strip()
    completion = direct.generate(GenerationRequest(model="smol", prompt="Once upon a time", max_tokens=5))
    assert completion.finish_reason == "length"
    assert completion.usage.completion_tokens == 5


def test_openai_engine_stream_cancel(direct: OpenAIEngine) -> None:
    sink = Collect(cancel_after=2)
    request = GenerationRequest(model="smol", prompt="Once upon a time", max_tokens=64, temperature=0)
    generation = direct.stream(request, sink)
    assert generation.finish_reason == "cancelled"
    assert len(sink.pieces) == 2
    assert generation.text == sink.text
    assert direct.generate(HELLO).text.strip()  # the server took the hang-up in its stride


@pytest.mark.parametrize("streamed", [False, True])
def test_openai_engine_context_overflow(direct: OpenAIEngine, streamed: bool) -> None:
    with pytest.raises(ContextLengthExceeded) as caught:
        if streamed:
            direct.stream(LONG, lambda _piece: False)
        else:
            direct.generate(LONG)
    assert caught.value.prompt_tokens > 2500
    assert caught.value.context_length == N_CTX


def test_openai_engine_closed_port_is_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    engine = OpenAIEngine(EngineSpec("nowhere", url, context_length=512))
    with pytest.raises(EngineUnavailable, match=url):
        engine.generate(HELLO)
    with pytest.raises(EngineUnavailable, match=url):
        engine.stream(HELLO, lambda _piece: False)
    engine.close()


def test_openai_engine_falls_back_when_the_server_is_down() -> None:
    engine = OpenAIEngine(EngineSpec("nowhere", f"http://127.0.0.1:{free_port()}/v1"))
    assert engine.info.context_length == 2048
    engine.close()
