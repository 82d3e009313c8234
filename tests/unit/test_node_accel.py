"""The node's accelerator: which methods it may pick, what it records, what survives a restart."""

from __future__ import annotations

from pathlib import Path

import trio

from accel.methods import LLAMACPP
from core.records import Generation, GenerationRequest, Message, Usage
from node.accel import AccelConfig, Accelerator, Measurement, features_of, fresh

REQUEST = GenerationRequest(model="m", messages=(Message("user", "Repeat: a, b, c"),), max_tokens=8)
FEATURES = features_of(REQUEST, "m", "llamacpp", "cpu", 0)
BY_NAME = {m.name: m for m in LLAMACPP}


def measured(tokens: int, seconds: float) -> Measurement:
    return Measurement(Generation("x", "stop", Usage(5, tokens)), seconds, seconds / 4)


def test_turned_off_it_picks_the_default_and_records_nothing(tmp_path: Path) -> None:
    accelerator = Accelerator(tmp_path, AccelConfig(enabled=False, exploration=1.0))
    assert all(accelerator.choose(FEATURES, LLAMACPP)[0].name == "default" for _ in range(20))
    accelerator.record(FEATURES, BY_NAME["ngram-simple"], measured(8, 0.1), True)
    assert len(accelerator.history) == 0


def test_lossy_methods_and_broken_claims_are_never_picked(tmp_path: Path) -> None:
    accelerator = Accelerator(tmp_path, AccelConfig(exploration=1.0))
    accelerator.record(FEATURES, BY_NAME["ngram-mod"], measured(8, 0.1), matched=False)
    picks = {accelerator.choose(FEATURES, LLAMACPP)[0].name for _ in range(200)}
    assert picks == {"ngram-simple", "threads-all"}  # exploring always: never the default, nor these
    lossy = Accelerator(tmp_path / "lossy", AccelConfig(exploration=1.0, lossy=True))
    assert {lossy.choose(FEATURES, LLAMACPP)[0].name for _ in range(300)} >= {"kv-q8", "small-batch"}


def test_the_history_and_the_learner_survive_a_restart(tmp_path: Path) -> None:
    accelerator = Accelerator(tmp_path, AccelConfig(exploration=0.0, retrain_every=1))
    for _ in range(30):
        accelerator.record(FEATURES, BY_NAME["default"], measured(8, 1.0), True)
        accelerator.record(FEATURES, BY_NAME["threads-all"], measured(8, 0.5), True)
    trio.run(accelerator.retrain)
    assert accelerator.choose(FEATURES, LLAMACPP)[0].name == "threads-all"
    accelerator.close()
    again = Accelerator(tmp_path, AccelConfig(exploration=0.0))
    assert len(again.history) == 60
    method, choice = again.choose(FEATURES, LLAMACPP)
    assert method.name == "threads-all" and choice is not None and choice.expected_speedup > 1.5


def test_fresh_turns_off_only_llamacpps_prompt_cache() -> None:
    assert fresh(BY_NAME["ngram-simple"]).request == {"cache_prompt": False}
    assert fresh(BY_NAME["ngram-simple"]).load == BY_NAME["ngram-simple"].load
