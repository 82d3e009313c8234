"""TransformersEngine on the real SmolLM2 GGUF, dequantised by transformers and run by torch on CPU."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM
from transformers.generation.configuration_utils import GenerationMode

from accel.methods import DEFAULT, TRANSFORMERS
from accel.methods import method as accel_method
from core.records import GenerationRequest, Message
from node.engines.base import ContextLengthExceeded, EngineError, EngineSpec
from node.engines.transformers_engine import TransformersEngine, _StopScanner
from tests.support.streaming import Collect, assert_stream_matches_generate

CONTEXT = 512


@pytest.fixture(scope="module")
def engine(smollm2_path: Path) -> Iterator[TransformersEngine]:
    engine = TransformersEngine(
        EngineSpec("smollm2", str(smollm2_path), context_length=CONTEXT), device="cpu"
    )
    yield engine
    engine.close()


GREEDY = GenerationRequest(
    model="smollm2",
    messages=(Message("user", "What is the capital of France?"),),
    max_tokens=16,
    temperature=0.0,
)


def test_describes_itself(engine: TransformersEngine) -> None:
    assert engine.info.backend == "transformers"
    assert engine.info.context_length == CONTEXT
    assert engine.info.hardware.startswith("cpu:")


def test_greedy_chat_answers(engine: TransformersEngine) -> None:
    generation = engine.generate(GREEDY)
    assert "Paris" in generation.text
    assert generation.finish_reason == "stop"
    assert generation.usage.prompt_tokens > 10  # the chat template wraps the question
    assert 0 < generation.usage.completion_tokens <= 16


def test_greedy_is_repeatable(engine: TransformersEngine) -> None:
    request = GenerationRequest(
        model="smollm2", prompt="The three primary colours are", max_tokens=12, temperature=0
    )
    assert engine.generate(request) == engine.generate(request)


def test_seeded_sampling_is_repeatable(engine: TransformersEngine) -> None:
    request = GenerationRequest(
        model="smollm2", prompt="Once upon a time", max_tokens=12, temperature=1.0, seed=11
    )
    assert engine.generate(request).text == engine.generate(request).text


def test_stream_pieces_make_up_the_text(engine: TransformersEngine) -> None:
    assert_stream_matches_generate(engine, GREEDY)


def test_cancel_stops_generation(engine: TransformersEngine) -> None:
    sink = Collect(cancel_after=3)
    request = GenerationRequest(model="smollm2", prompt="Once upon a time", max_tokens=64, temperature=0)
    generation = engine.stream(request, sink)
    assert generation.finish_reason == "cancelled"
    assert len(sink.pieces) == 3  # no calls after the sink asked to stop
    assert generation.usage.completion_tokens < 64


def test_prompt_longer_than_context_is_refused(engine: TransformersEngine) -> None:
    with pytest.raises(ContextLengthExceeded) as caught:
        engine.generate(GenerationRequest(model="smollm2", prompt="hello " * 600, max_tokens=4))
    assert caught.value.prompt_tokens > CONTEXT
    assert caught.value.context_length == CONTEXT


def test_max_tokens_is_respected(engine: TransformersEngine) -> None:
    request = GenerationRequest(model="smollm2", prompt="Once upon a time", max_tokens=5, temperature=0)
    generation = engine.generate(request)
    assert generation.finish_reason == "length"
    assert generation.usage.completion_tokens == 5


def test_stop_string_cuts_the_text_and_never_streams(engine: TransformersEngine) -> None:
    request = GenerationRequest(model="smollm2", prompt="Count: 1, 2, 3,", max_tokens=30, temperature=0)
    assert " 6," in engine.generate(request).text  # the model does count on, so the stop below is reached
    stopped = GenerationRequest(
        model="smollm2", prompt="Count: 1, 2, 3,", max_tokens=30, temperature=0, stop=(" 6",)
    )
    sink = Collect()
    generation = engine.stream(stopped, sink)
    assert generation.text == " 4, 5,"
    assert generation.finish_reason == "stop"
    assert sink.text == generation.text


def test_stop_scanner_holds_back_what_may_start_a_stop() -> None:
    scanner = _StopScanner(("###", "END"))
    assert scanner.add("ab#") == "ab"
    assert scanner.add("#") == ""
    assert scanner.add("x E") == "##x "
    assert scanner.add("N") == ""
    assert scanner.add("D tail") == ""
    assert scanner.stopped
    assert scanner.text == "ab##x "
    assert scanner.flush() == ""


def test_stop_scanner_flushes_a_partial_stop_at_the_end() -> None:
    scanner = _StopScanner(("###",))
    assert scanner.add("a##") == "a"
    assert scanner.flush() == "##"
    assert not scanner.stopped


def test_loads_an_hf_folder(smollm2_path: Path, tmp_path: Path) -> None:
    """A folder as save_pretrained writes it: SmolLM2's tokenizer with a tiny random Llama behind it."""
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path.parent, gguf_file=smollm2_path.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        eos_token_id=tokenizer.eos_token_id,
    )
    tokenizer.save_pretrained(tmp_path)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    engine = TransformersEngine(EngineSpec("tiny", str(tmp_path), context_length=256), device="cpu")
    try:
        request = GenerationRequest(
            model="tiny", messages=(Message("user", "Hi"),), max_tokens=6, temperature=0
        )
        generation = engine.generate(request)
        assert generation.usage.prompt_tokens > 3  # the chat template came along with the tokenizer
        assert generation.usage.completion_tokens <= 6
        assert engine.info.source == str(tmp_path)
    finally:
        engine.close()


# ---- acceleration methods (accel.methods): each really changes how generate runs, and lossless
# ones leave greedy output as it was

COPY = GenerationRequest(
    model="smollm2",
    messages=(
        Message(
            "user",
            "Repeat this Python function exactly, then stop:\n\ndef add(a, b):\n    total = a + b\n"
            "    return total\n",
        ),
    ),
    max_tokens=32,
    temperature=0.0,
)


@pytest.mark.parametrize("name", [m.name for m in TRANSFORMERS if m.name != DEFAULT])
def test_each_method_changes_how_generate_runs(engine: TransformersEngine, name: str) -> None:
    method = accel_method("transformers", name)
    config = copy.deepcopy(engine._model.generation_config)
    before = config.to_dict()
    config.update(**method.request)
    assert config.to_dict() != before  # the method's settings reach generate's configuration
    if name.startswith("prompt-lookup"):
        assert config.get_generation_mode() == GenerationMode.ASSISTED_GENERATION


@pytest.mark.parametrize("name", [m.name for m in TRANSFORMERS if m.lossless and m.name != DEFAULT])
def test_lossless_methods_keep_greedy_output(engine: TransformersEngine, name: str) -> None:
    method = accel_method("transformers", name)
    for request in (GREEDY, COPY):
        assert engine.generate(request, method) == engine.generate(request)


def test_a_method_of_another_engine_is_refused(engine: TransformersEngine) -> None:
    with pytest.raises(EngineError, match="for llamacpp"):
        engine.generate(GREEDY, accel_method("llamacpp", "ngram-simple"))
