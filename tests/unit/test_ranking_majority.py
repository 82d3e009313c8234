"""Majority voting over final answers, the baseline selector."""

from __future__ import annotations

import pytest

from ranking.majority import Majority, majority, weighted_majority


def test_the_most_common_answer_and_its_supporters() -> None:
    assert majority(["4", "5", "4", None, "4", "5"]) == Majority("4", (0, 2, 4))


def test_none_abstains() -> None:
    # Three unreadable answers do not outvote one readable one.
    assert majority([None, None, "7", None]) == Majority("7", (2,))
    assert majority([None, None]) is None
    assert majority([]) is None


def test_a_tie_goes_to_the_answer_given_first() -> None:
    assert majority(["b", "a", "a", "b"]) == Majority("b", (0, 3))
    assert majority([None, "a", "b", "b", "a"]) == Majority("a", (1, 4))


def test_weighted_majority_lets_strong_candidates_outvote_a_crowd() -> None:
    assert weighted_majority(["x", "y", "y"], [0.6, 0.2, 0.2]) == Majority("x", (0,))
    assert weighted_majority(["x", "y", "y"], [0.4, 0.3, 0.3]) == Majority("y", (1, 2))
    assert weighted_majority(["x", "y"], [0.5, 0.5]) == Majority("x", (0,))  # a tie: the first given
    assert weighted_majority([None, "y"], [0.9, 0.1]) == Majority("y", (1,))
    with pytest.raises(ValueError):
        weighted_majority(["x"], [])
