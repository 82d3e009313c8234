"""Bradley-Terry fits against hand-computed cases, choix, and reputation weights."""

from __future__ import annotations

import random

import choix
import numpy as np
import pytest

from ranking.bradley_terry import ALPHA, Vote, fit


def votes(judge: str, first: int, second: int, outcome: str, times: int = 1) -> list[Vote]:
    return [Vote(judge, first, second, outcome)] * times  # type: ignore[arg-type]


def random_votes(rng: random.Random, n: int, count: int, judges: int = 4) -> list[Vote]:
    out = []
    for _ in range(count):
        first, second = rng.sample(range(n), 2)
        out.append(Vote(f"j{rng.randrange(judges)}", first, second, rng.choice(["first", "second", "tie"])))
    return out


def test_two_candidates_follow_laplaces_rule() -> None:
    # 0 wins 3, loses 1, ties 1: W_0 = 3.5 of 5, so P(0 beats 1) = (3.5 + 1) / (5 + 2).
    ranking = fit(
        2,
        votes("j", 0, 1, "first", 2)
        + votes("j", 1, 0, "second")
        + votes("j", 0, 1, "second")
        + votes("j", 1, 0, "tie"),
    )
    assert ranking.winner == 0 and ranking.order == (0, 1)
    assert ranking.confidence == pytest.approx(4.5 / 7, abs=1e-6)
    assert ranking.strengths == pytest.approx((4.5 / 7, 2.5 / 7), abs=1e-6)


def dominated(judges: int) -> list[Vote]:
    """Candidate 2 wins every comparison it is in, both orders, from each judge; the rest split evenly."""
    rng = random.Random(0)
    data = []
    for k in range(judges):
        for other in (0, 1, 3, 4):
            data += votes(f"j{k}", 2, other, "first") + votes(f"j{k}", other, 2, "second")
        for first, second in ((0, 1), (1, 3), (3, 4), (4, 0)):
            data += votes(f"j{k}", first, second, rng.choice(["first", "second"]))
    return data


def test_a_dominant_candidate_wins_with_high_confidence() -> None:
    ranking = fit(5, dominated(judges=3))
    assert ranking.winner == 2
    # Six straight wins over each rival: by Laplace's rule alone, head to head, (6 + 1) / (6 + 2) = 0.875.
    assert 0.8 < ranking.confidence < 0.9
    assert all(ranking.strengths[2] > 5 * s for i, s in enumerate(ranking.strengths) if i != 2)
    # More of the same evidence, more confidence; less, less.
    assert fit(5, dominated(judges=10)).confidence > 0.9
    assert 0.5 < fit(5, dominated(judges=1)).confidence < ranking.confidence


def test_the_fit_is_the_map_of_half_wins_for_ties() -> None:
    # At the MAP, with strengths scaled to mean 1: s_i = (W_i + ALPHA) / (sum_j n_ij / (s_i + s_j) + ALPHA),
    # with a tie half a win each. This checks the doubled data handed to choix on its own terms.
    n = 5
    data = random_votes(random.Random(1), n, 40)
    s = np.array(fit(n, data).strengths) * n
    wins, denominators = np.zeros(n), np.zeros(n)
    for v in data:
        share = {"first": (1.0, 0.0), "second": (0.0, 1.0), "tie": (0.5, 0.5)}[v.outcome]
        wins[[v.first, v.second]] += share
        denominators[[v.first, v.second]] += 1 / (s[v.first] + s[v.second])
    assert s == pytest.approx((wins + ALPHA) / (denominators + ALPHA), rel=1e-5)


def test_with_much_data_the_fit_approaches_choix_maximum_likelihood() -> None:
    # Simulated from known strengths, every pair many times: the prior's pull is small, and the fit
    # agrees with choix's unregularised ILSR estimate and recovers the order of the true strengths.
    rng = random.Random(2)
    truth = [4.0, 2.0, 1.0, 0.5]
    data: list[Vote] = []
    pairs: list[tuple[int, int]] = []
    for _ in range(600):
        i, j = rng.sample(range(4), 2)
        won = rng.random() < truth[i] / (truth[i] + truth[j])
        data.append(Vote("j", i, j, "first" if won else "second"))
        pairs.append((i, j) if won else (j, i))
    ml = np.exp(choix.ilsr_pairwise(4, pairs))
    assert fit(4, data).strengths == pytest.approx(ml / ml.sum(), rel=0.05)
    assert fit(4, data).order == (0, 1, 2, 3)


@pytest.mark.parametrize("seed", range(20))
def test_weighted_fit_with_equal_weights_matches_choix(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(2, 9)
    data = random_votes(rng, n, rng.randint(0, 40))
    unweighted = fit(n, data)
    for weight in (1.0, 0.3, 7.0):  # weights are relative: any common weight is the unweighted fit
        weighted = fit(n, data, {f"j{k}": weight for k in range(4)})
        assert weighted.strengths == pytest.approx(unweighted.strengths, abs=1e-6)
        assert weighted.confidence == pytest.approx(unweighted.confidence, abs=1e-6)


def test_unequal_weights_change_the_fit() -> None:
    data = random_votes(random.Random(3), 4, 30)
    assert fit(4, data, {"j0": 1.0, "j1": 0.1, "j2": 1.0, "j3": 0.5}).strengths != pytest.approx(
        fit(4, data).strengths, abs=1e-3
    )


def test_reputation_weighted_fit_follows_the_trusted_judges() -> None:
    # Three trusted judges prefer X = 0 in both orders; thirty untrusted ones prefer Y = 1.
    trusted = [f"t{k}" for k in range(3)]
    untrusted = [f"u{k}" for k in range(30)]
    data = [v for t in trusted for v in votes(t, 0, 1, "first") + votes(t, 1, 0, "second")]
    data += [v for u in untrusted for v in votes(u, 0, 1, "second") + votes(u, 1, 0, "first")]
    weights = {t: 1.0 for t in trusted} | {u: 0.01 for u in untrusted}
    assert fit(2, data, weights).winner == 0
    assert fit(2, data, weights).confidence > 0.75
    assert fit(2, data, dict.fromkeys(weights, 1.0)).winner == 1
    assert fit(2, data).winner == 1


def test_a_few_trusted_votes_count_as_few_not_as_all() -> None:
    # One trusted vote among a hundred weightless ones is about one vote against the prior: Laplace's 2/3,
    # not the near-certainty of a hundred unanimous votes.
    data = votes("t", 0, 1, "first") + [v for k in range(100) for v in votes(f"u{k}", 0, 1, "tie")]
    weights = {"t": 1.0} | {f"u{k}": 1e-9 for k in range(100)}
    assert fit(2, data, weights).confidence == pytest.approx(2 / 3, abs=1e-3)


def test_zero_total_weight_is_no_evidence() -> None:
    ranking = fit(3, votes("j", 2, 0, "first", 10), {"j": 0.0})
    assert ranking.strengths == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert ranking.winner == 0 and ranking.confidence == pytest.approx(0.5)


def test_cycle_gives_equal_strengths() -> None:
    data = votes("j", 0, 1, "first", 3) + votes("j", 1, 2, "first", 3) + votes("j", 2, 0, "first", 3)
    ranking = fit(3, data)
    assert ranking.strengths == pytest.approx((1 / 3, 1 / 3, 1 / 3), abs=1e-6)
    assert ranking.confidence == pytest.approx(0.5, abs=1e-6)


def test_ties_alone_give_equal_strengths() -> None:
    ranking = fit(3, votes("j", 0, 1, "tie", 5) + votes("j", 1, 2, "tie", 5))
    assert ranking.strengths == pytest.approx((1 / 3, 1 / 3, 1 / 3), abs=1e-6)


def test_perfect_separation_and_disconnected_components_stay_finite() -> None:
    # {0, 1} and {2, 3} never meet; 0 and 2 win everything in their own component.
    ranking = fit(4, votes("j", 0, 1, "first", 20) + votes("j", 2, 3, "first", 20))
    assert all(np.isfinite(ranking.strengths)) and min(ranking.strengths) > 0
    assert sum(ranking.strengths) == pytest.approx(1.0)
    assert ranking.strengths[0] == pytest.approx(ranking.strengths[2])
    assert ranking.strengths[0] > 10 * ranking.strengths[1]
    assert ranking.confidence == pytest.approx(0.5)  # nothing compares the two winners
    assert ranking.order == (0, 2, 1, 3)  # level strengths go by index


def test_a_candidate_without_votes_keeps_the_mean_strength() -> None:
    ranking = fit(3, votes("j", 0, 1, "first", 50))
    assert ranking.strengths[2] == pytest.approx(1 / 3, abs=1e-6)
    assert ranking.order == (0, 2, 1)
    # 0 never met 2: the winner is far from sure of beating it, though sure of beating 1.
    assert 0.6 < ranking.confidence < 0.7


def test_small_cases() -> None:
    assert fit(1, []) == fit(1, [], {})
    assert fit(1, []).winner == 0 and fit(1, []).confidence == 1.0 and fit(1, []).strengths == (1.0,)
    assert fit(2, []).strengths == (0.5, 0.5) and fit(2, []).confidence == 0.5
    assert fit(2, votes("j", 1, 0, "first")).winner == 1


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one candidate"):
        fit(0, [])
    with pytest.raises(ValueError, match="outside"):
        fit(2, votes("j", 0, 2, "first"))
    with pytest.raises(ValueError, match="no weight for judges"):
        fit(2, votes("j", 0, 1, "first"), {"k": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        fit(2, votes("j", 0, 1, "first"), {"j": -1.0})
    with pytest.raises(ValueError, match="two candidates"):
        Vote("j", 1, 1, "first")
    with pytest.raises(ValueError, match="outcome"):
        Vote("j", 0, 1, "A")  # type: ignore[arg-type]


def test_votes_from_parsed_preferences() -> None:
    assert Vote.from_preference("j", 3, 1, "A") == Vote("j", 3, 1, "first")
    assert Vote.from_preference("j", 3, 1, "B") == Vote("j", 3, 1, "second")
    assert Vote.from_preference("j", 3, 1, "U") == Vote("j", 3, 1, "tie")
