"""The reputation rules' arithmetic, the outcome records and a judge's agreement, by hand-computed cases."""

from __future__ import annotations

from typing import Any

import pytest

from ranking.bradley_terry import Ranking, Vote, fit
from reputation import AnswerOutcome, JudgeOutcome, RoundOutcome, Rules, judge_agreement
from tests.support.reputation import RULES


def test_defaults_are_documented_values() -> None:
    assert (RULES.prior, RULES.floor, RULES.ceiling) == (10.0, 0.0, 100.0)
    assert RULES.half_life_s == 7 * 24 * 3600
    assert (RULES.answer_stake, RULES.judge_stake, RULES.min_free) == (0.1, 0.05, 1.0)
    assert (RULES.answer_position, RULES.answer_good, RULES.judge_agreement) == (0.5, 0.5, 0.5)
    assert (RULES.missed_deadline, RULES.malformed_message) == (0.5, 0.25)
    assert RULES.stake_fraction("answer") == 0.1 and RULES.stake_fraction("judge") == 0.05
    assert (Rules().writer_loss_share, Rules().writer_loss_half_life_s) == (0.1, 24 * 3600)


@pytest.mark.parametrize(
    "changes",
    [
        {"prior": -1.0},
        {"prior": 200.0},
        {"floor": 20.0},
        {"ceiling": 0.0, "prior": 0.0},
        {"half_life_s": 0.0},
        {"answer_stake": 0.0},
        {"judge_stake": 1.5},
        {"missed_deadline": float("nan")},
        {"writer_loss_share": 0.0},
        {"writer_loss_share": 1.5},
        {"writer_loss_half_life_s": 0.0},
        {"grader": 0},
        {"challenge_bank": "the civics questions"},
    ],
)
def test_inconsistent_rules_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Rules(**changes)


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError):
        RULES.stake_fraction("vote")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("position", "of", "good", "multiple"),
    [
        (0, 4, 1.0, 1.0),  # top and all GOOD: the stake doubles
        (3, 4, 0.0, -1.0),  # bottom and all BAD: the stake is lost
        (1, 4, None, 0.5 * (1 - 2 / 3)),  # second of four, unchecked: +1/6
        (2, 5, 0.75, 0.5 * 0 + 0.5 * 0.5),  # the middle place is worth nothing, 3/4 GOOD is +1/4
        (0, 1, 0.5, 0.0),  # alone and half GOOD: nothing to win or lose
    ],
)
def test_answer_multiple(position: int, of: int, good: float | None, multiple: float) -> None:
    assert RULES.answer_multiple(position, of, good) == pytest.approx(multiple)


def test_judge_and_fault_multiples() -> None:
    assert RULES.judge_multiple(1.0) == pytest.approx(0.5)
    assert RULES.judge_multiple(0.0) == pytest.approx(-0.5)
    assert RULES.judge_multiple(0.75) == pytest.approx(0.25)
    assert RULES.judge_multiple(None) == 0.0
    assert RULES.fault_multiple(2, 1) == pytest.approx(2 * 0.5 + 0.25)
    assert RULES.fault_multiple(0, 0) == 0.0


def test_decay_halves_the_distance_to_the_prior_every_half_life() -> None:
    week = RULES.half_life_s
    assert RULES.decayed(30.0, week) == pytest.approx(20.0)
    assert RULES.decayed(30.0, 2 * week) == pytest.approx(15.0)
    assert RULES.decayed(2.0, week) == pytest.approx(6.0)  # from below too
    assert RULES.decayed(30.0, 0.0) == 30.0 and RULES.decayed(30.0, -week) == 30.0


def test_outcome_records_refuse_impossible_values() -> None:
    with pytest.raises(ValueError):
        AnswerOutcome(position=3, of=3)
    with pytest.raises(ValueError):
        AnswerOutcome(position=0, of=2, good_ratio=1.5)
    with pytest.raises(ValueError):
        JudgeOutcome(agreement=-0.1)
    with pytest.raises(ValueError):
        RoundOutcome("r", missed={"p": -1})
    outcome = RoundOutcome("r", {"a": AnswerOutcome(0, 1)}, {"j": JudgeOutcome(None)}, {"m": 1}, {"x": 2})
    assert outcome.peers() == {"a", "j", "m", "x"}


def test_judge_agreement_on_a_hand_example() -> None:
    ranking = Ranking(strengths=(0.5, 0.3, 0.2), order=(0, 1, 2), confidence=0.5 / 0.8)
    votes = [
        Vote("j1", 0, 1, "first"),  # 0 over 1: agrees
        Vote("j1", 1, 2, "second"),  # 2 over 1: disagrees
        Vote("j1", 0, 2, "tie"),  # undecided: left out
        Vote("j1", 2, 0, "second"),  # 0 over 2: agrees
        Vote("j2", 0, 1, "tie"),
        Vote("j3", 2, 1, "first"),  # 2 over 1: disagrees
    ]
    assert judge_agreement("j1", votes, ranking) == pytest.approx(2 / 3)
    assert judge_agreement("j2", votes, ranking) is None  # only ties
    assert judge_agreement("j3", votes, ranking) == 0.0
    assert judge_agreement("absent", votes, ranking) is None


def test_a_pair_the_fit_left_level_is_no_consensus() -> None:
    ranking = Ranking(strengths=(0.4, 0.4, 0.2), order=(0, 1, 2), confidence=0.5)
    votes = [Vote("j", 0, 1, "second"), Vote("j", 1, 2, "first")]
    assert judge_agreement("j", votes, ranking) == 1.0  # 1 over 0 is not counted against it
    assert judge_agreement("j", votes[:1], ranking) is None


def test_judge_agreement_against_a_real_fit() -> None:
    votes = [Vote(j, 0, 1, "first") for j in ("a", "b", "c")] + [Vote("d", 0, 1, "second")]
    ranking = fit(2, votes)
    assert ranking.winner == 0
    assert judge_agreement("a", votes, ranking) == 1.0
    assert judge_agreement("d", votes, ranking) == 0.0
