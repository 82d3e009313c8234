"""Judge reliability from pairs with a known better answer, and what it does to a decision."""

from __future__ import annotations

import random

import pytest

from ranking import reliability
from ranking.aggregate import decide
from ranking.bradley_terry import Vote
from ranking.reliability import MIN_CLUSTER_PAIRS, Labelled, Reliability


def coin_flipper(judge: str, rng: random.Random, pairs: int = 40) -> list[Labelled]:
    return [Labelled(judge, None, float(rng.random() < 0.5)) for _ in range(pairs)]


def test_a_judge_at_chance_weighs_about_nothing() -> None:
    assert Reliability(40, 20.0).weight == 0.0
    assert Reliability(1000, 500.0).weight == 0.0
    assert Reliability(0, 0.0).weight == 0.0  # never measured
    # all U (a half each) is chance too
    assert reliability.fit([Labelled("u", None, 0.5)] * 50).weight("u") == 0.0


def test_a_judge_below_chance_is_discounted_not_trusted_in_reverse() -> None:
    assert Reliability(40, 4.0).weight == 0.0


def test_weight_grows_with_evidence_of_being_right() -> None:
    few, many = Reliability(5, 5.0).weight, Reliability(100, 90.0).weight
    assert 0 < few < many
    assert Reliability(100, 90.0).eta == pytest.approx(91 / 102)


@pytest.mark.parametrize("seed", range(20))
def test_one_reliable_judge_outweighs_ten_random_ones(seed: int) -> None:
    rng = random.Random(seed)
    labelled = [Labelled("good", None, 1.0)] * 36 + [Labelled("good", None, 0.0)] * 4  # 90% right
    for k in range(10):
        labelled += coin_flipper(f"random{k}", rng)
    weights = reliability.fit(labelled).weights(["good", *(f"random{k}" for k in range(10))])
    assert weights["good"] > sum(w for j, w in weights.items() if j != "good")
    # in a round: the reliable judge prefers 0, all ten random ones happen to prefer 1, both orders
    votes = [Vote("good", 0, 1, "first"), Vote("good", 1, 0, "second")]
    for k in range(10):
        votes += [Vote(f"random{k}", 0, 1, "second"), Vote(f"random{k}", 1, 0, "first")]
    assert decide(["x", "y"], votes, weights, {}, [1, 0]).winner == 0
    # counted alike, the ten win
    assert decide(["x", "y"], votes, dict.fromkeys(weights, 1.0), {}, [1, 0]).winner == 1


def test_reliability_is_per_cluster_where_there_are_enough_pairs() -> None:
    labelled = [Labelled("j", 1, 1.0)] * MIN_CLUSTER_PAIRS  # right on cluster 1
    labelled += [Labelled("j", 2, float(k % 2)) for k in range(MIN_CLUSTER_PAIRS)]  # chance on 2
    labelled += [Labelled("j", 3, 1.0)] * 3  # too few on 3: its overall record speaks
    fitted = reliability.fit(labelled)
    assert fitted.weight("j", 1) > fitted.weight("j", 3) > fitted.weight("j", 2) == 0.0
    assert fitted.weight("j", 3) == fitted.weight("j") == fitted.weight("j", 99)
    assert fitted.weight("stranger") == 0.0


def test_a_labelled_verdict_is_a_probability() -> None:
    with pytest.raises(ValueError, match="probability"):
        Labelled("j", None, 1.5)
