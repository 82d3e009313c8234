"""Bradley-Terry aggregation of the judges' votes, each vote weighed by its judge's reputation.

In the Bradley-Terry model candidate i beats j with probability s_i / (s_i + s_j).
The strengths are fitted by Zermelo's iteration, which is Hunter's MM
algorithm, s_i <- W_i / sum_j n_ij / (s_i + s_j), with W_i the wins of i
and n_ij the comparisons between i and j. A U vote (a tie) is half a win for
each side; a weighted vote adds its weight to n_ij and to the winner's W (half
to each for a tie). A soft vote, a judge's probability p that `first` is the
better (read from its token probabilities), is a fractional win: p of its
weight to `first`, 1 - p to `second`.

Without a prior the fit runs off to infinity when a candidate wins all its
comparisons, and it cannot place components of the comparison graph that
never meet each other. So it is the MAP fit under a Gamma(ALPHA + 1, rate
ALPHA) prior on every strength, mode 1 (choix's `alpha`), whose update is
s_i <- (W_i + ALPHA) / (sum_j n_ij / (s_i + s_j) + ALPHA). At that fit the
strengths average exactly 1, the prior's mode. ALPHA = 1 makes two candidates
follow Laplace's rule, P(i beats j) = (W_i + 1) / (n_ij + 2): one vote is
2/3, not certainty. Every strength stays finite and positive; a candidate
without votes keeps the mean strength; the components of a disconnected
graph are each placed around that mean, since nothing in the data compares
them (their winners come out level, and the confidence between them 1/2).

Weights are relative: they are rescaled so that their total is Kish's
effective number of votes, (sum w)^2 / sum w^2. So scaling all weights alike
changes nothing, equal weights give the unweighted fit, and a few trusted
votes among many nearly weightless ones count as about that few votes against
the prior, not as all of them. Unweighted fits go to choix; weighted ones run
the same iteration here, since choix takes no per-comparison weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import choix
import numpy as np

from ranking.judging import Preference

Outcome = Literal["first", "second", "tie"]

ALPHA = 1.0
# The mean absolute change of the centred log strengths at which an iteration stops (choix's test).
TOLERANCE = 1e-6
MAX_ITERATIONS = 10_000
TIE_DIGITS = 9

_OUTCOMES: dict[Preference, Outcome] = {"A": "first", "B": "second", "U": "tie"}


@dataclass(frozen=True, slots=True)
class Vote:
    """One judge's verdict on a comparison: candidate `first` was shown as A, `second` as B.
    A tie is a U: the judge had no information, and each side gets half a win.

    A soft vote also holds `share`, the judge's probability that `first` is the
    better, which the fit counts as that much of a win; `outcome` is then its
    rounding (a tie at exactly 1/2), for the readers that count hard votes.
    """

    judge: str
    first: int
    second: int
    outcome: Outcome
    share: float | None = None

    def __post_init__(self) -> None:
        if self.first == self.second or min(self.first, self.second) < 0:
            raise ValueError(f"a vote compares two candidates, got {self.first} and {self.second}")
        if self.outcome not in ("first", "second", "tie"):
            raise ValueError(f"outcome must be first, second or tie, got {self.outcome!r}")
        if self.share is not None and (not math.isfinite(self.share) or not 0 <= self.share <= 1):
            raise ValueError(f"a soft vote's share is a probability, got {self.share!r}")
        if self.share is not None and _rounded(self.share) != self.outcome:
            raise ValueError(f"a soft vote of share {self.share} is not the outcome {self.outcome!r}")

    @classmethod
    def from_preference(cls, judge: str, first: int, second: int, preference: Preference) -> Vote:
        """The vote a parsed reply to the pairwise prompt amounts to."""
        return cls(judge, first, second, _OUTCOMES[preference])

    @classmethod
    def soft(cls, judge: str, first: int, second: int, share: float) -> Vote:
        """The vote of a judge that gives `first` the probability `share` of being the better."""
        return cls(judge, first, second, _rounded(share), share)

    @property
    def first_wins(self) -> float:
        """The part of a win that goes to `first`: its share, or 1, 0 and 1/2 for A, B and U."""
        if self.share is not None:
            return self.share
        return {"first": 1.0, "second": 0.0, "tie": 0.5}[self.outcome]


def _rounded(share: float) -> Outcome:
    return "first" if share > 0.5 else "second" if share < 0.5 else "tie"


@dataclass(frozen=True, slots=True)
class Ranking:
    """Strengths sum to 1; `order` runs from the strongest down, equal strengths (to 1e-9) by index.

    `confidence` is the fitted probability that the winner beats the runner-up
    in one more comparison: 1/2 when nothing tells them apart, nearer 1 the more
    and the more unanimous the votes between them and around them (the prior
    shrinks thin evidence towards 1/2). With one candidate it is 1.
    """

    strengths: tuple[float, ...]
    order: tuple[int, ...]
    confidence: float

    @property
    def winner(self) -> int:
        return self.order[0]


def fit(n: int, votes: Iterable[Vote], weights: Mapping[str, float] | None = None) -> Ranking:
    """The Bradley-Terry ranking of n candidates (indices 0..n-1) from the votes; with `weights`, each
    vote counts by its judge's weight, which must be given for every judge that voted."""
    if n < 1:
        raise ValueError(f"a ranking needs at least one candidate, got {n}")
    votes = list(votes)
    if any(max(v.first, v.second) >= n for v in votes):
        raise ValueError(f"a vote names a candidate outside 0..{n - 1}")
    if weights is None and all(v.share is None for v in votes):
        strengths = _fit_choix(n, votes)
    else:  # choix takes neither weights nor fractional wins
        wins, counts = _tally(
            n, votes, _effective(votes, weights) if weights is not None else [1.0] * len(votes)
        )
        strengths = _fit_mm(wins, counts)
    strengths = strengths / strengths.sum()
    # Strengths equal but for float noise (a symmetric cycle, twin components) are equal: lowest index first.
    order = tuple(sorted(range(n), key=lambda i: (-round(strengths[i], TIE_DIGITS), i)))
    confidence = 1.0
    if n > 1:  # the winner against the runner-up
        confidence = float(strengths[order[0]] / (strengths[order[0]] + strengths[order[1]]))
    return Ranking(tuple(float(s) for s in strengths), order, confidence)


def _fit_choix(n: int, votes: Sequence[Vote]) -> np.ndarray:
    """choix counts whole wins only, so every vote goes in twice: a win as two wins, a tie as one win
    each way. With ALPHA doubled too, the fit is exactly that of half a win each for a tie."""
    data: list[tuple[int, int]] = []
    for v in votes:
        if v.outcome == "tie":
            data += [(v.first, v.second), (v.second, v.first)]
        else:
            winner, loser = (v.first, v.second) if v.outcome == "first" else (v.second, v.first)
            data += [(winner, loser)] * 2
    params = choix.mm_pairwise(n, data, alpha=2 * ALPHA, max_iter=MAX_ITERATIONS, tol=TOLERANCE)
    return np.exp(params)


def _effective(votes: Sequence[Vote], weights: Mapping[str, float]) -> list[float]:
    """Each vote's weight, rescaled so that they add up to the effective number of votes (all zero if
    every weight is zero: then there is no evidence, and the prior alone ranks)."""
    missing = {v.judge for v in votes} - weights.keys()
    if missing:
        raise ValueError(f"no weight for judges {sorted(missing)}")
    raw = [weights[v.judge] for v in votes]
    if not all(math.isfinite(w) and w >= 0 for w in raw):
        raise ValueError("weights must be finite and non-negative")
    total, squares = sum(raw), sum(w * w for w in raw)
    return [w * total / squares if squares > 0 else 0.0 for w in raw]


def _tally(n: int, votes: Sequence[Vote], weights: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Fractional wins W (n) and comparisons n_ij (n x n, symmetric) from the weighted votes."""
    wins = np.zeros(n)
    counts = np.zeros((n, n))
    for v, w in zip(votes, weights, strict=True):
        counts[v.first, v.second] += w
        counts[v.second, v.first] += w
        wins[v.first] += w * v.first_wins
        wins[v.second] += w * (1 - v.first_wins)
    return wins, counts


def _fit_mm(wins: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The regularised MM iteration, step for step as choix's mm_pairwise runs it: strengths scaled to
    mean 1 (where the MAP fit's sum lands anyway), stopping on the same test."""
    n = len(wins)
    log_strengths = np.zeros(n)
    for _ in range(MAX_ITERATIONS):
        strengths = np.exp(log_strengths)
        strengths *= n / strengths.sum()
        denominators = (counts / (strengths[:, None] + strengths[None, :])).sum(axis=1)
        new = np.log((wins + ALPHA) / (denominators + ALPHA))
        new -= new.mean()
        if np.abs(new - log_strengths).sum() <= TOLERANCE * n:
            return np.exp(new)
        log_strengths = new
    raise RuntimeError(f"Bradley-Terry did not converge in {MAX_ITERATIONS} iterations")
