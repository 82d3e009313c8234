"""Task features read off hand-made prompts: code share, repetition, edit requests, vector and kind."""

from __future__ import annotations

import math

import pytest

from accel.features import FEATURE_NAMES, code_share, describe, edit_request, repetition

PROSE = "What is the capital of France?\nI would like a short answer, and why it became the capital."
PYTHON = "def add(a, b):\n    return a + b\n\nfor i in range(3):\n    print(add(i, i))\ntotal = add(1, 2)\n"
MIXED = (
    "My script crashes when I run it. Can you help?\n"
    "```python\nimport os\nprint(os.getcwd())\n```\n"
    "Thanks a lot in advance."
)


def test_code_share_counts_code_lines_and_fenced_lines() -> None:
    assert code_share(PROSE) == 0.0
    assert code_share(PYTHON) == 1.0
    assert code_share("function f(x) {\n  return x * 2;\n}\nconst y = f(3);") == 1.0
    # Two prose lines, two fences and the two lines between them.
    assert code_share(MIXED) == pytest.approx(4 / 6)
    assert code_share("") == 0.0


def test_prose_that_starts_like_code_is_not_code() -> None:
    assert code_share("Return the answer in one paragraph.\nIf you can, for example, be brief.") == 0.0


def test_repetition_is_the_share_of_repeated_word_trigrams() -> None:
    assert repetition("one two three four five six seven") == 0.0
    # Ten trigrams; "the cat sat", "cat sat on", "sat on the", "on the mat" each occur twice.
    assert repetition("The cat sat on the mat, the cat sat on the mat") == pytest.approx(8 / 10)
    assert repetition("too short") == 0.0


@pytest.mark.parametrize(
    "text",
    [
        "Please rewrite the following paragraph so it reads better:\n\nThe cat sat on the mat.",
        "Translate into French: the cat sat on the mat.",
        "```python\nprint(1 +)\n```\nFix the syntax error above.",
        "Refactor this function to use a list comprehension:\n" + PYTHON,
    ],
)
def test_edit_requests_are_recognised(text: str) -> None:
    assert edit_request(text)


@pytest.mark.parametrize(
    "text",
    [
        PROSE,
        "What does this code do?\n```python\n# fix this later: copy and edit\nx = 1\n```",
        # The verb is deep inside a pasted document, not in the instruction at either end.
        "Summarise this article.\n" + "Some filler words here. " * 30 + "They translate it. " + "More. " * 80,
    ],
)
def test_other_requests_are_not_edit_requests(text: str) -> None:
    assert not edit_request(text)


def test_describe_and_vector() -> None:
    features = describe("m", "llamacpp", PYTHON, 40, 200, True, cluster=3, concurrency=2, hardware="cpu")
    assert (features.model, features.backend, features.cluster, features.hardware) == (
        "m",
        "llamacpp",
        3,
        "cpu",
    )
    assert features.code_share == 1.0 and not features.edit_request
    vector = features.vector()
    assert vector.shape == (len(FEATURE_NAMES),)
    assert dict(zip(FEATURE_NAMES, vector.tolist(), strict=True)) == {
        "log_prompt_tokens": math.log1p(40),
        "log_max_tokens": math.log1p(200),
        "chat": 1.0,
        "code_share": 1.0,
        "repetition": 0.0,
        "edit_request": 0.0,
        "log_concurrency": math.log1p(2),
    }


@pytest.mark.parametrize(
    ("text", "prompt_tokens", "kind"),
    [
        ("Rewrite this: " + PROSE, 600, "edit, long prompt"),
        ("Rewrite this: " + PROSE, 30, "edit, short prompt"),
        (PYTHON, 30, "code"),
        ("the cat sat on the mat " * 10, 70, "repetitive prompt"),
        (PROSE, 900, "long prompt"),
        (PROSE, 20, "short question"),
        (PROSE, 200, "medium prompt"),
    ],
)
def test_kind(text: str, prompt_tokens: int, kind: str) -> None:
    assert describe("m", "b", text, prompt_tokens, 100, False).kind() == kind
