from core.records import GenerationRequest, Message
from node.prompts import TURN_STOPS, as_completion, transcript


def test_transcript_writes_turns_and_leaves_the_answer_open() -> None:
    messages = (
        Message("system", "Be brief."),
        Message("user", "2+2?"),
        Message("assistant", "4"),
        Message("user", "3+3?"),
    )
    assert transcript(messages) == "Be brief.\nQ: 2+2?\nA: 4\nQ: 3+3?\nA:"


def test_as_completion_keeps_sampling_and_adds_turn_stops_once() -> None:
    request = GenerationRequest(
        "m", messages=(Message("user", "hi"),), max_tokens=7, temperature=0.0, stop=("\nQ:",)
    )
    completion = as_completion(request)
    assert completion.prompt == "Q: hi\nA:" and completion.messages is None
    assert completion.max_tokens == 7 and completion.temperature == 0.0
    assert completion.stop == TURN_STOPS


def test_plain_prompts_are_untouched() -> None:
    request = GenerationRequest("m", prompt="Once upon")
    assert as_completion(request) is request
