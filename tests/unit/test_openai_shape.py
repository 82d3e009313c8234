"""openai_shape against bodies shaped like the ones llama.cpp's server and vLLM really send."""

from __future__ import annotations

from typing import Any

import pytest

from core.records import GenerationRequest, Message, Usage
from node.engines.base import ContextLengthExceeded, EngineError
from node.engines.openai_shape import StreamAccumulator, parse_generation, raise_for_error, request_body
from tests.support.streaming import Collect

CHAT = GenerationRequest(
    model="m",
    messages=(Message("system", "Be brief."), Message("user", "Capital of France?")),
    max_tokens=16,
    temperature=0.0,
    stop=("\n\n",),
    seed=7,
)

# Recorded from xllamacpp's server (llama.cpp b-series) with SmolLM2.
LLAMACPP_CHAT = {
    "choices": [
        {
            "finish_reason": "length",
            "index": 0,
            "message": {"role": "assistant", "content": "Hello! How can I"},
        }
    ],
    "object": "chat.completion",
    "usage": {"completion_tokens": 8, "prompt_tokens": 31, "total_tokens": 39},
}
LLAMACPP_COMPLETION = {
    "choices": [{"text": " the scene", "index": 0, "logprobs": None, "finish_reason": "stop"}],
    "object": "text_completion",
    "usage": {"completion_tokens": 3, "prompt_tokens": 2, "total_tokens": 5},
}
LLAMACPP_CONTEXT_ERROR = {
    "error": {
        "code": 400,
        "message": "request (3031 tokens) exceeds the available context size (1024 tokens), "
        "try increasing it",
        "type": "exceed_context_size_error",
        "n_prompt_tokens": 3031,
        "n_ctx": 1024,
    }
}
# The shape of vLLM's OpenAI server (ErrorResponse wrapped in "error", as of v0.10).
VLLM_CHAT = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "smol",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Paris.",
                "reasoning_content": None,
                "tool_calls": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
            "stop_reason": None,
        }
    ],
    "usage": {"prompt_tokens": 10, "total_tokens": 12, "completion_tokens": 2, "prompt_tokens_details": None},
}
VLLM_CONTEXT_ERROR = {
    "error": {
        "message": "This model's maximum context length is 1024 tokens. However, your request has 3031 input "
        "tokens. Please reduce the length of the input messages.",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
}
OPENAI_CONTEXT_ERROR = {
    "error": {
        "message": "This model's maximum context length is 8192 tokens. However, your messages resulted in "
        "9000 tokens. Please reduce the length of the messages.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


def vllm_stream(*contents: str, finish: str = "stop") -> list[dict[str, Any]]:
    """Chunks as vLLM streams a chat answer with stream_options.include_usage."""
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    ]
    chunks += [{"choices": [{"index": 0, "delta": {"content": c}, "finish_reason": None}]} for c in contents]
    chunks.append({"choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": finish}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": len(contents)}})
    return chunks


def test_chat_body_carries_every_field() -> None:
    body = request_body(CHAT, model="smol", stream=True)
    assert body == {
        "model": "smol",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
        ],
        "max_tokens": 16,
        "temperature": 0.0,
        "top_p": 1.0,
        "stop": ["\n\n"],
        "seed": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_completion_body_leaves_out_what_was_not_asked() -> None:
    body = request_body(GenerationRequest(model="m", prompt="Once upon"))
    assert body["prompt"] == "Once upon"
    assert not {"messages", "model", "stop", "seed", "stream", "stream_options"} & body.keys()


def test_llamacpp_chat_and_completion_parse() -> None:
    chat = parse_generation(LLAMACPP_CHAT)
    assert (chat.text, chat.finish_reason, chat.usage) == ("Hello! How can I", "length", Usage(31, 8))
    completion = parse_generation(LLAMACPP_COMPLETION)
    assert (completion.text, completion.finish_reason, completion.usage) == (
        " the scene",
        "stop",
        Usage(2, 3),
    )


def test_vllm_chat_parses() -> None:
    generation = parse_generation(VLLM_CHAT)
    assert (generation.text, generation.finish_reason, generation.usage) == ("Paris.", "stop", Usage(10, 2))


@pytest.mark.parametrize("server_says", ["eos", "stop_sequence", "stop"])
def test_server_specific_finish_reasons_become_stop(server_says: str) -> None:
    response = {"choices": [{"text": "x", "finish_reason": server_says}]}
    assert parse_generation(response).finish_reason == "stop"


def test_a_response_without_choices_is_an_error() -> None:
    with pytest.raises(EngineError, match="no choices"):
        parse_generation({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 0}})


def test_llamacpp_context_overflow_carries_the_counts() -> None:
    with pytest.raises(ContextLengthExceeded) as caught:
        raise_for_error(LLAMACPP_CONTEXT_ERROR)
    assert (caught.value.prompt_tokens, caught.value.context_length) == (3031, 1024)


def test_openai_context_overflow_carries_the_counts() -> None:
    with pytest.raises(ContextLengthExceeded) as caught:
        raise_for_error(OPENAI_CONTEXT_ERROR)
    assert (caught.value.prompt_tokens, caught.value.context_length) == (9000, 8192)


def test_vllm_context_overflow_carries_the_counts() -> None:
    with pytest.raises(ContextLengthExceeded) as caught:
        raise_for_error(VLLM_CONTEXT_ERROR)
    assert (caught.value.prompt_tokens, caught.value.context_length) == (3031, 1024)


def test_other_errors_keep_the_servers_message() -> None:
    with pytest.raises(EngineError, match="Expected 'messages' to be an array") as caught:
        raise_for_error(
            {
                "error": {
                    "code": 400,
                    "message": "Expected 'messages' to be an array",
                    "type": "invalid_request_error",
                }
            }
        )
    assert not isinstance(caught.value, ContextLengthExceeded)
    with pytest.raises(EngineError, match="model crashed"):
        raise_for_error({"error": "model crashed"})


def test_a_body_without_error_passes() -> None:
    raise_for_error(VLLM_CHAT)


def test_stream_sums_up_pieces_finish_and_usage() -> None:
    sink = Collect()
    accumulator = StreamAccumulator(sink)
    for chunk in vllm_stream("Par", "is", ".", finish="length"):
        assert accumulator.feed(chunk) is False
    generation = accumulator.result()
    assert sink.pieces == ["Par", "is", "."]  # empty deltas are not handed on
    assert (generation.text, generation.finish_reason, generation.usage) == ("Paris.", "length", Usage(9, 3))


def test_completion_stream_from_llamacpp() -> None:
    chunks = [
        {"choices": [{"text": ",", "index": 0, "logprobs": None, "finish_reason": None}]},
        {"choices": [{"text": " but", "index": 0, "logprobs": None, "finish_reason": None}]},
        {
            "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "length"}],
            "usage": {"completion_tokens": 2, "prompt_tokens": 1},
        },
    ]
    accumulator = StreamAccumulator(lambda _piece: False)
    for chunk in chunks:
        accumulator.feed(chunk)
    assert accumulator.result().text == ", but"
    assert accumulator.result().finish_reason == "length"
    assert accumulator.result().usage == Usage(1, 2)


def test_stream_cancel_reports_cancelled_and_what_was_sent() -> None:
    accumulator = StreamAccumulator(Collect(cancel_after=2))
    stopped_at = next(i for i, chunk in enumerate(vllm_stream("a", "b", "c", "d")) if accumulator.feed(chunk))
    generation = accumulator.result()
    assert stopped_at == 2  # the role chunk, then "a", then "b" asks to stop
    assert accumulator.cancelled
    assert (generation.text, generation.finish_reason) == ("ab", "cancelled")


def test_stream_without_usage_counts_pieces() -> None:
    accumulator = StreamAccumulator(lambda _piece: False)
    for chunk in vllm_stream("x", "y")[:-1]:
        accumulator.feed(chunk)
    assert accumulator.result().usage == Usage(0, 2)


def test_error_inside_a_stream_raises() -> None:
    accumulator = StreamAccumulator(lambda _piece: False)
    accumulator.feed(vllm_stream("x")[1])
    with pytest.raises(EngineError, match="out of memory"):
        accumulator.feed(
            {"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}
        )
