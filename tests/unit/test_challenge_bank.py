"""The challenge bank and the grader, as the reputation rules name them: every node grades alike, and a
change to either is a new network, made on purpose."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from consensus import Ledger
from reputation import Rules
from routing.datasets import ChallengeBank, DatasetError, Item, challenge_bank
from routing.grading import GRADER_VERSION, grade

EASY = Path(__file__).parents[1] / "support" / "challenges.jsonl"
# What `grade` says of a fixed set of answers to the bank's questions, per grader version. A change to
# grading that moves it grades some challenge answer otherwise: bump routing.grading.GRADER_VERSION and
# Rules.grader (a new network, whose nodes refuse the old one's entries), then record the new figure here.
# Over the open network's bank (civics, medmcqa, logiqa; on the civics part alone grader 1 gives 96385ddb...).
GRADES = {1: "1444ae429c0198eb257ed4be481a3efe4561e9b84eac81ba842ac31e3e38cb77"}


def answers_to(item: Item) -> list[str]:
    """Right answers, said in other words, and wrong ones."""
    right = [a for accepted in item.answers for a in (accepted, accepted.upper(), f"{accepted}.")]
    return [*right, f"It is {item.answers[0]}", f"No.\n{item.answers[0]}", "I don't know", ""]


# A multiple-choice question, as an operator's bank may hold, and replies that pick B, or don't.
CHOICE = Item("own", "mc", "mc", "Which? A. x B. y C. z D. w", (), ("B",))
PICKS = ["B", "(b)", "B.", "The answer is B", "**B**", "A", "A or B", "b", "I'd say B, or maybe C", ""]


def test_the_grader_grades_as_its_version_says() -> None:
    questions = [*sorted(challenge_bank().items.items()), ("own/mc", CHOICE)]
    graded = [
        [key, text, grade(item, text)]
        for key, item in questions
        for text in (PICKS if item.kind == "mc" else answers_to(item))
    ]
    assert {right for *_, right in graded} == {True, False}
    figure = hashlib.sha256(json.dumps(graded).encode()).hexdigest()
    assert figure == GRADES[GRADER_VERSION], "grading changed: bump GRADER_VERSION and Rules.grader"


def test_the_rules_name_the_grader_and_the_bank() -> None:
    rules = Rules()
    assert rules.grader == GRADER_VERSION and rules.challenge_bank == challenge_bank().digest
    assert Rules(grader=2).digest() != rules.digest()
    own = challenge_bank(EASY)
    assert Rules(challenge_bank=own.digest).digest() != rules.digest()
    # The same questions give the same digest, in whatever order they are listed.
    assert ChallengeBank.of(reversed(list(own.items.values()))).digest == own.digest


def test_a_ledger_runs_only_with_the_grader_and_the_bank_its_rules_name() -> None:
    with pytest.raises(ValueError, match="grader"):
        Ledger(rules=Rules(grader=GRADER_VERSION + 1))
    with pytest.raises(ValueError, match="bank"):
        Ledger(bank=challenge_bank(EASY))
    own = challenge_bank(EASY)
    assert Ledger(rules=Rules(challenge_bank=own.digest), bank=own).bank is own


def test_a_bank_holds_no_code_nor_a_question_twice() -> None:
    item = Item("d", "1", "qa", "Q?", (), ("a",))
    for items in ([item, item], [Item("d", "2", "code", "def f():", (), ())], []):
        with pytest.raises(DatasetError):
            ChallengeBank.of(items)
