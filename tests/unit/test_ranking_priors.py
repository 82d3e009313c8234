"""Answerer priors: log-odds of calibrated accuracy, and the decision they give with judges at chance."""

from __future__ import annotations

import math
import random

import pytest

from ranking import priors
from ranking.aggregate import decide
from ranking.bradley_terry import Vote
from ranking.majority import weighted_majority


def test_log_odds_weighs_a_blind_guess_at_zero() -> None:
    assert priors.log_odds(0.25, options=4) == pytest.approx(0.0, abs=1e-9)
    assert priors.log_odds(0.5, options=2) == pytest.approx(0.0, abs=1e-9)
    assert priors.log_odds(0.8, options=4) == pytest.approx(math.log(3 * 0.8 / 0.2))
    assert priors.log_odds(0.1, options=4) < 0  # worse than a guess counts against its answer
    assert priors.log_odds(1 / priors.OPEN_OPTIONS) == pytest.approx(0.0, abs=1e-9)
    assert math.isfinite(priors.log_odds(1.0))


@pytest.mark.parametrize("bad", [(-0.1, 4), (1.1, None), (math.nan, None), (0.5, 1)])
def test_log_odds_refuses_nonsense(bad: tuple[float, int | None]) -> None:
    with pytest.raises(ValueError):
        priors.log_odds(*bad)


def test_two_agreeing_weaker_answerers_can_outvote_a_stronger_one() -> None:
    weights = [priors.log_odds(p, 4) for p in (0.7, 0.5, 0.5)]
    said = ["A", "B", "B"]
    assert decide(said, [], {}, {}, [0, 1, 2], priors=weights).winner in (1, 2)
    # but not a much stronger one
    weights = [priors.log_odds(p, 4) for p in (0.97, 0.4, 0.4)]
    assert decide(said, [], {}, {}, [0, 1, 2], priors=weights).winner == 0


def test_with_all_judges_at_chance_the_decision_is_the_calibration_weighted_vote() -> None:
    rng = random.Random(3)
    for _ in range(200):
        n = rng.randint(2, 6)
        said = [rng.choice("ABCD") for _ in range(n)]
        weights = [priors.log_odds(rng.uniform(0.05, 0.95), 4) for _ in range(n)]
        order = rng.sample(range(n), n)
        votes = [
            Vote(f"j{k}", *rng.sample(range(n), 2), rng.choice(["first", "second", "tie"])) for k in range(8)
        ]
        at_chance = {v.judge: 0.0 for v in votes}  # what the reliability fit gives judges at chance
        decision = decide(said, votes, at_chance, {}, order, priors=weights)
        vote = weighted_majority([said[c] for c in order], [weights[c] for c in order])
        assert vote is not None
        assert said[decision.winner] == vote.answer
        assert decision.winner in [order[i] for i in vote.supporters]


def test_judges_with_signal_move_the_decision_off_the_vote() -> None:
    said, weights = ["A", "B"], [priors.log_odds(0.6, 4), priors.log_odds(0.5, 4)]
    assert decide(said, [], {}, {}, [0, 1], priors=weights).winner == 0
    votes = [Vote("j", 1, 0, "first"), Vote("j", 0, 1, "second")] * 5
    assert decide(said, votes, {"j": 1.0}, {}, [0, 1], priors=weights).winner == 1


def test_a_candidate_that_failed_its_checks_lends_nothing() -> None:
    # 1 and 2 say B, but 2 was found BAD; with 0 found GOOD, only 0 and 1 pass, and A outweighs B.
    weights = [priors.log_odds(0.6, 4), priors.log_odds(0.5, 4), priors.log_odds(0.9, 4)]
    good = {0: (1, 1), 1: (1, 1), 2: (0, 1)}
    assert decide(["A", "B", "B"], [], {}, good, [0, 1, 2], priors=weights).winner == 0


def test_priors_come_one_per_candidate() -> None:
    with pytest.raises(ValueError, match="one prior"):
        decide(["A", "B"], [], {}, {}, [0, 1], priors=[0.0])
