"""Keeps one server process alive: start it, wait until it is healthy, restart it when it dies.

Used for engines that run as their own process (vLLM). The child gets its own
process group, so stopping it also stops the workers it spawned, and on Linux
it is told to die with the node, so a SIGKILLed node leaves no GPU-holding
orphan behind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Literal

import httpx

log = logging.getLogger(__name__)

State = Literal["starting", "ready", "restarting", "stopped", "failed"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_TAIL_LINES = 30
_TAIL_BYTES = 16384


class ProcessStartError(RuntimeError):
    """The process did not become healthy; the message carries the end of its output."""


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGKILL the child when the thread that started it ends."""
    if not sys.platform.startswith("linux"):
        return None
    # Loaded here, in the parent, so that the child does no more than one system call before exec.
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # the whole group is already gone
        os.killpg(pgid, sig)


class ProcessSupervisor:
    """Runs `command`, keeps it healthy, and restarts it with backoff when it exits unexpectedly.

    All launches happen on one supervising thread: PR_SET_PDEATHSIG fires when
    the *thread* that forked the child ends, so the child must not be started
    from a short-lived worker thread.
    """

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        health_url: str,
        log_dir: str | os.PathLike[str],
        startup_timeout: float = 600.0,
        stop_grace: float = 10.0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        max_failures: int = 5,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.health_url = health_url
        self.log_path = Path(log_dir) / f"{name}.log"
        # Python servers (vLLM) would otherwise hold their last words in a buffer when they crash.
        self._env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._startup_timeout = startup_timeout
        self._stop_grace = stop_grace
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._max_failures = max_failures
        self._cond = threading.Condition()
        self._state: State = "stopped"
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._restart_requested = False
        self._error = ""
        self.restarts = 0

    @property
    def state(self) -> State:
        return self._state

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return None if proc is None else proc.pid

    def start(self) -> None:
        """Launch the process and block until it is healthy; raise ProcessStartError if it is not."""
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError(f"{self.name} is already supervised")
            self._stopping = False
            self._restart_requested = False
            self._set_state("starting")
            self._thread = threading.Thread(target=self._supervise, name=f"supervise-{self.name}")
            self._thread.daemon = True
            self._thread.start()
            self._cond.wait_for(lambda: self._state != "starting")
            if self._state != "ready":
                raise ProcessStartError(self._error or f"{self.name} was stopped before it was ready")

    def restart(self) -> None:
        """Replace the process with a fresh one and block until it is healthy."""
        with self._cond:
            supervised = self._thread is not None and self._thread.is_alive()
            if supervised:
                self._restart_requested = True
                proc = self._proc
                self._cond.notify_all()  # cuts a backoff wait short
        if not supervised:
            self.start()
            return
        if proc is not None:
            self._terminate(proc)
        with self._cond:
            self._cond.wait_for(lambda: not self._restart_requested and self._state != "restarting")
            if self._state != "ready":
                raise ProcessStartError(self._error)

    def stop(self) -> None:
        """Terminate the process group (SIGTERM, then SIGKILL after the grace period) and stop watching."""
        with self._cond:
            self._stopping = True
            proc, thread = self._proc, self._thread
            self._set_state("stopped")  # requests fail fast from now on, not after the grace period
        if proc is not None:
            self._terminate(proc)
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        with self._cond:
            self._set_state("stopped")

    def _set_state(self, state: State) -> None:
        # Callers hold self._cond.
        self._state = state
        self._cond.notify_all()

    def _supervise(self) -> None:
        failures = 0
        ever_ready = False
        while True:
            proc, offset = self._launch()
            if proc is None:
                return
            error = self._await_health(proc, offset)
            if error is None:
                ever_ready, failures = True, 0
                with self._cond:
                    self._set_state("ready")
                code = proc.wait()
                # Workers it spawned may outlive it and hold the port or the GPU.
                _signal_group(proc.pid, signal.SIGKILL)
                error = self._describe(f"exited with code {code}", offset)
            else:
                self._terminate(proc)
            with self._cond:
                self._proc = None
                if self._stopping:
                    return
                if self._restart_requested:
                    self.restarts += 1
                    self._set_state("restarting")
                    continue
                failures += 1
                self._error = error
                if not ever_ready or failures > self._max_failures:
                    log.error("%s failed for good: %s", self.name, error)
                    self._set_state("failed")
                    return
                self.restarts += 1
                self._set_state("restarting")
                delay = min(self._backoff * 2 ** (failures - 1), self._max_backoff)
                log.warning("%s: %s; restarting in %.1fs", self.name, error, delay)
                self._cond.wait_for(lambda: self._stopping or self._restart_requested, timeout=delay)

    def _launch(self) -> tuple[subprocess.Popen[bytes] | None, int]:
        """Start the command with its output appended to the log; returns the offset where this run begins."""
        with self._cond:
            if self._stopping:
                return None, 0
            self._restart_requested = False  # this launch is the restart that was asked for
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("ab") as out:
                out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {self.command}\n".encode())
                out.flush()
                offset = out.tell()
                try:
                    self._proc = subprocess.Popen(
                        self.command,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=self._env,
                        start_new_session=True,
                        preexec_fn=_die_with_parent(),
                    )
                except OSError as exc:
                    self._error = f"{self.name}: cannot run {self.command[0]!r}: {exc}"
                    self._set_state("failed")
                    return None, 0
            return self._proc, offset

    def _await_health(self, proc: subprocess.Popen[bytes], offset: int) -> str | None:
        """Poll the health URL until it answers 200; returns why not, if it never does."""
        deadline = time.monotonic() + self._startup_timeout
        # The process runs on this machine: a proxy from the environment could only get in the way.
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                code = proc.poll()
                if code is not None:
                    return self._describe(f"exited with code {code} before it was ready", offset)
                try:
                    if client.get(self.health_url).status_code == 200:
                        return None
                except httpx.TransportError:
                    pass  # not listening yet
                if time.monotonic() > deadline:
                    return self._describe(
                        f"did not answer 200 on {self.health_url} within {self._startup_timeout:.0f}s", offset
                    )
                with self._cond:
                    if self._cond.wait_for(lambda: self._stopping, timeout=0.25):
                        return "stopped"

    def _describe(self, what: str, offset: int) -> str:
        with self.log_path.open("rb") as f:
            # A server that ran for days has a long log: only its end matters here.
            f.seek(max(offset, f.seek(0, os.SEEK_END) - _TAIL_BYTES))
            lines = f.read().decode(errors="replace").splitlines()[-_TAIL_LINES:]
        output = "\n".join(lines) if lines else "(no output)"
        return f"{self.name}: {' '.join(self.command)} {what}; last output (from {self.log_path}):\n{output}"

    def _terminate(self, proc: subprocess.Popen[bytes]) -> None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(self._stop_grace)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs of SIGTERM; killing it", self.name, self._stop_grace)
        # Also reaches workers that ignored SIGTERM after their parent went.
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
