"""llama.cpp's acceleration methods on the real SmolLM2: each loads a profile with its own settings, the
speculative ones really draft, and the lossless ones leave greedy output as it was."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import xllamacpp

from accel.methods import DEFAULT, LLAMACPP
from accel.methods import method as accel_method
from core.records import GenerationRequest, Message
from node.engines.base import EngineError, EngineSpec
from node.engines.llamacpp import MAX_PROFILES, LlamaCppEngine, profile

COPY = GenerationRequest(
    model="smollm2",
    messages=(
        Message(
            "user",
            "Copy this Python code exactly and add a div function:\n\ndef add(a, b):\n    return a + b\n\n"
            "def sub(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a * b\n",
        ),
    ),
    max_tokens=48,
    temperature=0.0,
)
OPEN = GenerationRequest(
    model="smollm2",
    messages=(Message("user", "Write two sentences about the sea."),),
    max_tokens=32,
    temperature=0.0,
)


@pytest.fixture(scope="module")
def engine(smollm2_path: Path) -> Iterator[LlamaCppEngine]:
    engine = LlamaCppEngine(EngineSpec("smollm2", str(smollm2_path), context_length=1024), threads=1)
    yield engine
    engine.close()


def cold(name: str) -> object:
    """The method with llama.cpp's prompt cache off: a reused prefix itself flips near-tie tokens, so
    outputs are compared fresh."""
    method = accel_method("llamacpp", name)
    return dataclasses.replace(method, request={**method.request, "cache_prompt": False})


def test_each_method_sets_what_it_names(engine: LlamaCppEngine) -> None:
    default = engine.params({})
    assert default.cpuparams.n_threads == 1 and default.speculative.types == [
        xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_NONE
    ]
    simple = engine.params(accel_method("llamacpp", "ngram-simple").load)
    assert simple.speculative.types == [
        xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE
    ]
    assert (simple.speculative.ngram_simple.size_n, simple.speculative.ngram_simple.size_m) == (3, 16)
    mod = engine.params(accel_method("llamacpp", "ngram-mod").load)
    assert mod.speculative.types == [xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_MOD]
    assert engine.params(accel_method("llamacpp", "threads-all").load).cpuparams.n_threads >= 1
    q8 = engine.params(accel_method("llamacpp", "kv-q8").load)
    assert q8.cache_type_k == q8.cache_type_v == xllamacpp.ggml_type.GGML_TYPE_Q8_0
    assert default.cache_type_k == xllamacpp.ggml_type.GGML_TYPE_F16
    small = engine.params(accel_method("llamacpp", "small-batch").load)
    assert (small.n_batch, small.n_ubatch) == (64, 32) != (default.n_batch, default.n_ubatch)


def test_speculative_methods_really_draft(engine: LlamaCppEngine) -> None:
    for name in ("ngram-simple", "ngram-mod"):
        method = accel_method("llamacpp", name)
        # The raw response's timings count drafted tokens; the parsed Generation has no place for them.
        raw = engine._call(COPY, method, stream=False)
        assert raw["timings"].get("draft_n", 0) > 0, (name, raw["timings"])
    plain = engine._call(COPY, accel_method("llamacpp", DEFAULT), stream=False)
    assert plain["timings"].get("draft_n", 0) == 0


@pytest.mark.parametrize("name", [m.name for m in LLAMACPP if m.lossless and m.name != DEFAULT])
def test_lossless_methods_keep_greedy_output(engine: LlamaCppEngine, name: str) -> None:
    reference = cold(DEFAULT)
    for request in (COPY, OPEN):
        assert engine.generate(request, cold(name)).text == engine.generate(request, reference).text


def test_profiles_are_loaded_on_use_and_bounded(engine: LlamaCppEngine) -> None:
    for m in LLAMACPP:
        engine.generate(OPEN, m)
    loaded = engine.profiles()
    assert len(loaded) == MAX_PROFILES and () in loaded
    assert loaded[-1] == profile(LLAMACPP[-1].load)  # the last used is kept
    assert engine.generate(OPEN).text  # the default still serves


def test_a_method_of_another_engine_is_refused(engine: LlamaCppEngine) -> None:
    with pytest.raises(EngineError, match="for transformers"):
        engine.generate(OPEN, accel_method("transformers", "prompt-lookup-10"))
