"""The node's acceleration: pick each request's method, keep what happened, relearn as history grows.

Every request a hosted model serves is described (accel.features), run with
the method the meta-learner picks among the engine's methods (lossless ones
only unless the operator allows others; now and then one it is less sure of,
to keep learning), and recorded in the history (SQLite, bounded) with its
latency, time to first token and speed. Every `retrain_every` new records
the learner is fitted again in a worker thread and saved beside the history,
so a restarted node picks up where it left off. Turned off, every request
runs with the engine's default and nothing is recorded.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from accel.features import TaskFeatures, describe
from accel.history import History, Record
from accel.learner import Choice, MetaLearner
from accel.methods import CATALOG, DEFAULT, Method
from accel.tasks import Task
from core.records import Generation, GenerationRequest

if TYPE_CHECKING:
    from .hosting import HostedModel

log = logging.getLogger("swarm.accel")

CHARS_PER_TOKEN = 4  # a prompt's size is known in characters before the engine tokenises it


@dataclass(frozen=True)
class AccelConfig:
    enabled: bool = True
    exploration: float = 0.1
    lossy: bool = False  # may methods that change greedy output be picked?
    retrain_every: int = 50
    max_history: int = 50_000


def method_names() -> list[str]:
    """Every method name of every backend, the default first: the learner's arms."""
    names = [DEFAULT]
    for methods in CATALOG.values():
        names += [m.name for m in methods if m.name not in names]
    return names


def fresh(method: Method) -> Method:
    """The method with what earlier requests left in the engine out of play: llama.cpp's prompt cache
    reuses a prefix computed earlier, which makes a request faster and flips near-tie tokens."""
    if method.backend != "llamacpp":
        return method
    return replace(method, request={**method.request, "cache_prompt": False})


def features_of(
    request: GenerationRequest, model: str, backend: str, hardware: str, running: int
) -> TaskFeatures:
    text = request.prompt or "\n".join(m.content for m in request.messages or ())
    return describe(
        model,
        backend,
        text,
        math.ceil(len(text) / CHARS_PER_TOKEN),
        request.max_tokens,
        request.is_chat,
        concurrency=running,
        hardware=hardware,
    )


@dataclass(frozen=True)
class Measurement:
    generation: Generation
    latency_s: float
    ttft_s: float | None

    @property
    def tokens_per_s(self) -> float:
        """Output tokens per second over the whole request, prompt included: what the caller waits for."""
        return self.generation.usage.completion_tokens / self.latency_s if self.latency_s > 0 else 0.0


class Accelerator:
    def __init__(self, data_dir: Path, config: AccelConfig = AccelConfig()) -> None:
        self.config = config
        self.directory = data_dir / "accel"
        self.history = History(self.directory / "history.db", max_rows=config.max_history)
        self.learner_path = self.directory / "learner.json"
        records = self.history.records()
        self.learner = self._load_learner(records)
        # (model, method) pairs seen to change greedy output: whatever they claim, they count as lossy.
        self._mismatched = {(r.features.model, r.method) for r in records if r.matched is False}
        self._new = 0
        self._retrain = trio.Event()

    def _load_learner(self, records: Sequence[Record]) -> MetaLearner:
        if self.learner_path.exists():
            try:
                saved = MetaLearner.load(self.learner_path)
                if saved.methods == method_names():
                    return saved
                log.info("the catalog of methods changed since the learner was saved: learning again")
            except (OSError, ValueError) as exc:
                log.warning(
                    "the saved acceleration learner is unreadable (%s): learning again from history", exc
                )
        learner = self._new_learner()
        learner.fit(records)
        return learner

    def _new_learner(self) -> MetaLearner:
        return MetaLearner(method_names(), exploration=self.config.exploration)

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    def choose(self, features: TaskFeatures, methods: Sequence[Method]) -> tuple[Method, Choice | None]:
        """The method to run a request with, among the engine's `methods` (the default first)."""
        if not self.config.enabled:
            return methods[0], None
        allowed = [
            m.name
            for m in methods
            if self.config.lossy or (m.lossless and (features.model, m.name) not in self._mismatched)
        ]
        choice = self.learner.choose(features, allowed=allowed)
        return next(m for m in methods if m.name == choice.method), choice

    def record(
        self, features: TaskFeatures, method: Method, measured: Measurement, matched: bool | None
    ) -> None:
        if not self.config.enabled:
            return
        record = Record(
            features=features,
            method=method.name,
            latency_s=measured.latency_s,
            ttft_s=measured.ttft_s,
            tokens_per_s=measured.tokens_per_s,
            output_tokens=measured.generation.usage.completion_tokens,
            matched=matched,
            at=time.time(),
        )
        try:
            self.history.add(record)
        except sqlite3.Error as exc:  # a full disk costs the record, never the request
            log.error("could not record a request in the acceleration history: %s", exc)
            return
        if matched is False:
            self._mismatched.add((features.model, method.name))
        self._new += 1
        if self._new >= self.config.retrain_every:
            self._retrain.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Retrain in the background whenever enough new records came in."""
        task_status.started()
        while True:
            await self._retrain.wait()
            self._retrain = trio.Event()
            self._new = 0
            await self.retrain()

    async def retrain(self) -> None:
        records = self.history.records()
        learner = self._new_learner()
        await trio.to_thread.run_sync(learner.fit, records)
        self.learner = learner
        try:
            self.learner.save(self.learner_path)
        except OSError as exc:
            log.error("could not save the acceleration learner: %s", exc)
        log.info("acceleration learner retrained on %d records", len(records))

    def summary(self, recent: int = 10) -> dict[str, Any]:
        return {
            "recent": [
                {
                    "model": r.features.model,
                    "kind": r.features.kind(),
                    "method": r.method,
                    "tokens_per_s": r.tokens_per_s,
                    "latency_s": r.latency_s,
                    "matched": r.matched,
                }
                for r in self.history.recent(recent)
            ],
            "enabled": self.config.enabled,
            "exploration": self.config.exploration,
            "lossy": self.config.lossy,
            "records": len(self.history),
            "learned": [
                {
                    "model": k.model,
                    "backend": k.backend,
                    "kind": k.kind,
                    "method": k.method,
                    "expected_speedup": k.expected_speedup,
                    "records": k.records,
                    "method_records": k.method_records,
                }
                for k in self.learner.summary()
            ],
        }

    def close(self) -> None:
        self.history.close()


@dataclass
class MethodProfile:
    """How one method did on the profiling tasks of one model, next to the default."""

    model: str
    method: str
    lossless: bool
    runs: int = 0
    matched: int = 0
    speedups: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "method": self.method,
            "lossless": self.lossless,
            "runs": self.runs,
            "matched": self.matched,
            # A lossless claim that the outputs contradict: the method is not picked while lossy is off.
            "claim_holds": None if not self.lossless else self.matched == self.runs,
            "speedup": statistics.geometric_mean(self.speedups) if self.speedups else None,
        }


async def profile(
    models: Mapping[str, HostedModel], accelerator: Accelerator, tasks: Sequence[Task]
) -> list[MethodProfile]:
    """Run every task through every method of every model, each from a cold prompt cache, record it all
    (each output checked against the default's), and retrain: a new node's first history. One method
    at a time, after an untimed warm-up, so that loading an engine profile is not counted."""
    found = []
    for name, hosted in models.items():
        info, methods = hosted.engine.info, hosted.engine.methods()
        requests = [hosted.prepare(task.request(name)) for task in tasks]
        features = [features_of(r, name, info.backend, info.hardware, 0) for r in requests]
        reference: list[Measurement] = []
        for method in methods:
            await hosted.measure(requests[0], fresh(method))
            entry = MethodProfile(name, method.name, method.lossless)
            for i, request in enumerate(requests):
                measured = await hosted.measure(request, fresh(method))
                if method is methods[0]:
                    reference.append(measured)
                matched = measured.generation.text == reference[i].generation.text
                accelerator.record(features[i], method, measured, matched)
                entry.runs += 1
                entry.matched += matched
                if reference[i].tokens_per_s > 0 and measured.tokens_per_s > 0:
                    entry.speedups.append(measured.tokens_per_s / reference[i].tokens_per_s)
            if method is not methods[0]:
                found.append(entry)
    await accelerator.retrain()
    return found
