"""Majority voting over the candidates' final answers: the baseline the ranking has to beat.

The answers come normalised by the caller (`routing.grading.final_answer`), so
that two candidates saying the same thing in different words count as one
answer. A candidate whose answer could not be read abstains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Majority:
    """The most common answer and the candidates (indices, ascending) that gave it."""

    answer: str
    supporters: tuple[int, ...]


def majority(answers: Sequence[str | None]) -> Majority | None:
    """The most common of the answers, None ignored; a tie goes to the answer given first. None if no
    candidate gave an answer."""
    return weighted_majority(answers, [1.0] * len(answers))


def weighted_majority(answers: Sequence[str | None], weights: Sequence[float]) -> Majority | None:
    """The answer with the most weight behind it, each candidate lending its own weight (its
    Bradley-Terry strength, say) to the answer it gave; None ignored, a tie to the answer given first."""
    if len(weights) != len(answers):
        raise ValueError("one weight per answer")
    supporters: dict[str, list[int]] = {}  # in the order the answers are first given
    for i, answer in enumerate(answers):
        if answer is not None:
            supporters.setdefault(answer, []).append(i)
    if not supporters:
        return None
    # max keeps the first of equals; sums compared to 1e-12 so float noise can't break a tie.
    answer = max(supporters, key=lambda a: round(sum(weights[i] for i in supporters[a]), 12))
    return Majority(answer, tuple(supporters[answer]))
