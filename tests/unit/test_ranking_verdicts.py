"""Soft verdicts from token probabilities: both orders, the letter prior, fractional wins in the fit."""

from __future__ import annotations

import math
import random

import pytest

from ranking.bradley_terry import Vote, fit
from ranking.verdicts import both_orders, debiased, letter_prior, logit, sigmoid, two_way_share


def test_two_way_share_is_p_a_among_the_two_letters() -> None:
    assert two_way_share(0.6, 0.2) == pytest.approx(0.75)
    assert two_way_share(0.0, 0.0) is None  # the grammar's letters got nothing: no reading


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, math.inf])
def test_two_way_share_refuses_what_is_not_a_probability(bad: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        two_way_share(bad, 0.5)


def test_averaging_both_orders_cancels_a_judge_that_always_says_a() -> None:
    for p in (1.0, 0.99, 0.8):  # however sure it is of A, shown either way
        assert both_orders(p, p) == pytest.approx(0.5)
    # a judge that does read the answers keeps its verdict
    assert both_orders(0.9, 0.1) == pytest.approx(0.9)


def judge_with_bias(bias: float, truth: float) -> tuple[float, float]:
    """P(A) of a judge that adds `bias` to the log-odds the answers earn: shown one way, then the other."""
    return sigmoid(truth + bias), sigmoid(-truth + bias)


def test_the_letter_prior_correction_removes_a_constant_bias() -> None:
    rng = random.Random(1)
    truths = [rng.uniform(-3, 3) for _ in range(30)]
    recent = [judge_with_bias(1.7, t) for t in truths]
    prior = letter_prior(recent)
    assert prior == pytest.approx(1.7)
    for t, (shown, swapped) in zip(truths, recent, strict=True):
        assert debiased(shown, prior) == pytest.approx(sigmoid(t))
        assert debiased(swapped, prior) == pytest.approx(sigmoid(-t))
        # with the bias removed, both orders agree and averaging them changes nothing
        assert both_orders(shown, swapped, prior) == pytest.approx(sigmoid(t))
    # without the correction, a one-order reading is off
    assert abs(sigmoid(truths[0] + 1.7) - sigmoid(truths[0])) > 0.05


def test_no_recent_pairs_is_no_prior() -> None:
    assert letter_prior([]) == 0.0
    assert debiased(0.3, 0.0) == pytest.approx(0.3)


def test_logit_stays_finite_at_certainty() -> None:
    assert math.isfinite(logit(1.0)) and math.isfinite(logit(0.0))


def test_a_soft_vote_is_a_fractional_win() -> None:
    # 0.75 of a win to 0, four times: W_0 = 3 of 4, so Laplace's rule gives (3 + 1) / (4 + 2).
    ranking = fit(2, [Vote.soft("j", 0, 1, 0.75)] * 4)
    assert ranking.confidence == pytest.approx(4 / 6, abs=1e-6)
    # and a hard vote is the soft vote of share 1, 0 or 1/2
    hard = fit(2, [Vote("j", 0, 1, "first"), Vote("j", 0, 1, "tie")], {"j": 1.0})
    soft = fit(2, [Vote.soft("j", 0, 1, 1.0), Vote.soft("j", 0, 1, 0.5)], {"j": 1.0})
    assert hard.strengths == pytest.approx(soft.strengths)


def test_a_soft_vote_rounds_to_its_outcome_for_hard_readers() -> None:
    assert [Vote.soft("j", 0, 1, p).outcome for p in (0.7, 0.3, 0.5)] == ["first", "second", "tie"]
    with pytest.raises(ValueError, match="outcome"):
        Vote("j", 0, 1, "first", 0.2)
    with pytest.raises(ValueError, match="probability"):
        Vote.soft("j", 0, 1, 1.2)
