"""vLLM as a supervised child process, spoken to over its OpenAI-compatible HTTP API.

vLLM is never imported: it is asyncio-based, heavy and GPU-only, so it runs
as `vllm serve` on a loopback port under a ProcessSupervisor that restarts it
if it dies. The command can be replaced, so any OpenAI-compatible server can
be run and supervised the same way.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from accel.methods import Method
from core.records import Generation, GenerationRequest, ModelInfo
from node.ports import free_port
from node.supervisor import ProcessStartError, ProcessSupervisor

from .base import Engine, EngineError, EngineSpec, EngineUnavailable, TextSink
from .openai_http import OpenAIEngine, ServerUnreachable

DEFAULT_PARALLEL = 16  # requests at once when the operator doesn't say: vLLM batches continuously
DEFAULT_COMMAND = (
    "vllm",
    "serve",
    "{model}",
    "--host",
    "127.0.0.1",
    "--port",
    "{port}",
    "--served-model-name",
    "{name}",
)


class VllmEngine(Engine):
    """`spec.source` is what vLLM loads (a hub id or a folder); `spec.name` is what it is served and
    announced as.

    `command` replaces `vllm serve ...`: its "{port}", "{model}" and "{name}"
    are filled in, and it must serve the OpenAI API and /health on
    127.0.0.1:{port}. `extra_args` are appended to either command.
    """

    def __init__(
        self,
        spec: EngineSpec,
        *,
        extra_args: Sequence[str] = (),
        command: Sequence[str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 900.0,
        restart_backoff: float = 1.0,
    ) -> None:
        self._name = spec.name
        parallel = spec.parallel or DEFAULT_PARALLEL
        port = free_port()
        args = list(DEFAULT_COMMAND if command is None else command)
        if command is None and spec.context_length is not None:
            args += ["--max-model-len", str(spec.context_length)]
        values = {"port": str(port), "model": spec.source, "name": spec.name}
        # Not str.format: arguments may hold JSON with braces of their own.
        args = [re.sub(r"\{(port|model|name)\}", lambda m: values[m[1]], arg) for arg in args]
        self._supervisor = ProcessSupervisor(
            f"vllm-{spec.name}",
            [*args, *extra_args],
            health_url=f"http://127.0.0.1:{port}/health",
            log_dir=log_dir or Path(tempfile.gettempdir()) / "swarm-engines",
            startup_timeout=startup_timeout,
            backoff=restart_backoff,
        )
        try:
            self._supervisor.start()
        except ProcessStartError as exc:
            raise EngineError(f"model {spec.name!r}: its vLLM process did not start: {exc}") from exc
        self._inner = OpenAIEngine(
            replace(spec, source=f"http://127.0.0.1:{port}/v1", parallel=parallel), remote_model=spec.name
        )
        self.info = ModelInfo(
            name=spec.name,
            backend="vllm",
            source=spec.source,
            context_length=self._inner.info.context_length,
            chat=spec.chat,
            hardware="gpu",
            parallel=parallel,
        )

    @property
    def supervisor(self) -> ProcessSupervisor:
        return self._supervisor

    def _ready_inner(self) -> OpenAIEngine:
        state = self._supervisor.state
        if state != "ready":
            raise EngineUnavailable(
                f"model {self._name!r}: its vLLM process is {state} (log: {self._supervisor.log_path})"
            )
        return self._inner

    def generate(self, request: GenerationRequest, method: Method | None = None) -> Generation:
        self.accepted(method)  # vLLM's engine options are per process: only its default here
        inner = self._ready_inner()
        try:
            return inner.generate(request)
        except ServerUnreachable as exc:
            raise self._went_away(exc) from exc

    def stream(self, request: GenerationRequest, sink: TextSink, method: Method | None = None) -> Generation:
        self.accepted(method)
        inner = self._ready_inner()
        try:
            return inner.stream(request, sink)
        except ServerUnreachable as exc:
            raise self._went_away(exc) from exc

    def _went_away(self, exc: ServerUnreachable) -> EngineUnavailable:
        return EngineUnavailable(
            f"model {self._name!r}: its vLLM process went away during the request and is being "
            f"restarted (log: {self._supervisor.log_path}; {exc})"
        )

    def restart(self) -> None:
        try:
            self._supervisor.restart()
        except ProcessStartError as exc:
            raise EngineUnavailable(f"model {self._name!r}: its vLLM process did not restart: {exc}") from exc
        self._inner.restart()

    def close(self) -> None:
        self._inner.close()
        self._supervisor.stop()
