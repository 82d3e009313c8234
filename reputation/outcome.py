"""What a round's outcome says about each participant, in the terms the reputation rules use.

Independent of node/: the round driver fills it from its RoundResult, and the
book needs nothing else to settle the round.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ranking.bradley_terry import TIE_DIGITS, Ranking, Vote


def _share(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must lie in [0, 1] or be None, got {value}")


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    """An answer's place in the fitted order (0 = top) of `of` candidates, and its share of GOOD verdicts
    (None when no judge could check it)."""

    position: int
    of: int
    good_ratio: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.position < self.of:
            raise ValueError(f"position must lie in 0..{self.of - 1}, got {self.position}")
        _share("good_ratio", self.good_ratio)


@dataclass(frozen=True, slots=True)
class JudgeOutcome:
    """The share of a judge's decided votes that agree with the fitted order (None when it decided none)."""

    agreement: float | None

    def __post_init__(self) -> None:
        _share("agreement", self.agreement)


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """Per peer: how its answer placed, how its votes agreed, and how many deadlines it missed and
    malformed messages it sent (counts of 0 may be left out)."""

    round_id: str
    answerers: Mapping[str, AnswerOutcome] = field(default_factory=dict)
    judges: Mapping[str, JudgeOutcome] = field(default_factory=dict)
    missed: Mapping[str, int] = field(default_factory=dict)
    malformed: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, counts in (("missed", self.missed), ("malformed", self.malformed)):
            if any(n < 0 for n in counts.values()):
                raise ValueError(f"{name} counts must be non-negative")

    def peers(self) -> set[str]:
        return {*self.answerers, *self.judges, *self.missed, *self.malformed}


def judge_agreement(judge: str, votes: Iterable[Vote], ranking: Ranking) -> float | None:
    """The share of `judge`'s decided votes (A or B, not U) whose winner the ranking places above the
    loser; None if it decided none. A pair the fit left level (equal strengths, ordered only by index)
    is no consensus either way, so a vote on it is left out rather than counted."""
    rank = {cid: place for place, cid in enumerate(ranking.order)}
    level = [round(s, TIE_DIGITS) for s in ranking.strengths]
    agreed = decided = 0
    for v in votes:
        if v.judge != judge or v.outcome == "tie":
            continue
        winner, loser = (v.first, v.second) if v.outcome == "first" else (v.second, v.first)
        if level[winner] == level[loser]:
            continue
        decided += 1
        agreed += rank[winner] < rank[loser]
    return None if decided == 0 else agreed / decided
