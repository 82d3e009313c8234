"""One real node process on loopback: started, waited for, stopped.

The building block of local testnets, tests and benchmarks: it runs
`python -m swarm node start` exactly as an operator would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from node.ports import free_port


class NodeStartFailed(RuntimeError):
    pass


class NodeProcess:
    def __init__(
        self,
        data_dir: Path,
        *args: str,
        port: int | None = None,
        p2p_port: int | None = None,
        env: dict[str, str] | None = None,
        detached: bool = False,
        accel: bool = False,
    ) -> None:
        """`detached`: in a session of its own, so it outlives the command that started it (testnet up).
        `accel` off (the default) runs every request with the engine's default settings: a test sees
        what it asked for, not a method the node's learner is trying out."""
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.p2p_port = p2p_port or free_port()
        self.args = [
            sys.executable,
            "-m",
            "swarm",
            "node",
            "start",
            "--port",
            str(self.port),
            "--data-dir",
            str(self.data_dir),
            "--p2p-port",
            str(self.p2p_port),
            *args,
            *(() if accel else ("--no-accel",)),
        ]
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.detached = detached
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self) -> NodeProcess:
        """Start the process without waiting for it to be ready."""
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=self.detached
            )
        return self

    def start(self, timeout: float = 120.0) -> NodeProcess:
        self.launch().wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NodeStartFailed(f"node exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise NodeStartFailed(f"node not ready after {timeout:g} s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL if it doesn't stop in time; returns the exit code."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> NodeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
