"""Pairwise verdicts read from a judge's token probabilities, and the judge's letter bias taken out.

A judge asked "A or B?" under a grammar that allows only those two letters
gives, for its one token, a probability of each. Read as text it is a hard
pick; read as probabilities it is a soft verdict: P(A) / (P(A) + P(B)), how
sure the judge is that answer A is the better, which Bradley-Terry counts as
that much of a win (`bradley_terry.Vote.soft`). GOOD against BAD reads the same.

Small judges lean on a letter whatever the answers say. Two corrections:

- Both orders: each pair is asked with either answer first, and the verdict on
  "first is better" is the mean of P(A) asked one way and 1 - P(A) the other.
  A judge that always says A gives 1 and 0: one half, no information, which is
  what it has (FairEval's balanced position calibration).
- The letter prior (PriDe, Zheng et al., ICLR 2024): the judge's observed
  log-odds of A over B are its prior log-odds for the letter plus the log-odds
  the answers earn. Over both orders of a pair the answers' part cancels, so the
  mean of the two observed log-odds estimates the prior; averaged over the
  judge's recent pairs (no labels needed) and subtracted from each verdict, a
  constant bias is gone before the orders are averaged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# Probabilities are clipped this far from 0 and 1, so that a log-odds stays finite.
EPSILON = 1e-6


def logit(p: float) -> float:
    p = min(max(p, EPSILON), 1 - EPSILON)
    return math.log(p / (1 - p))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x)) if x >= 0 else math.exp(x) / (1 + math.exp(x))


def two_way_share(p_a: float, p_b: float) -> float | None:
    """P(A) among the two options, from the probabilities of replying A and B (the letters, or GOOD and
    BAD: each in [0, 1], their sum at most 1, the rest went to replies not allowed); None when neither
    got any."""
    for p in (p_a, p_b):
        if not (math.isfinite(p) and 0 <= p <= 1):
            raise ValueError(f"a token probability is in [0, 1], got {p!r}")
    total = p_a + p_b
    return p_a / total if total > 0 else None


def letter_prior(pairs: Iterable[tuple[float, float]]) -> float:
    """A judge's prior log-odds of saying A over B, from its recent pairs asked both ways: each pair is
    (P(A) with one answer first, P(A) with the other first). 0 (no bias) without any pairs."""
    estimates = [(logit(shown) + logit(swapped)) / 2 for shown, swapped in pairs]
    return sum(estimates) / len(estimates) if estimates else 0.0


def debiased(p_a: float, prior: float) -> float:
    """P(A) with the judge's letter prior (log-odds) taken out."""
    return sigmoid(logit(p_a) - prior)


def both_orders(p_a_first_shown_a: float, p_a_first_shown_b: float, prior: float = 0.0) -> float:
    """The probability that the first of a pair is the better, from P(A) with the first shown as A and
    P(A) with the first shown as B, each freed of the letter prior, then averaged."""
    return (debiased(p_a_first_shown_a, prior) + 1 - debiased(p_a_first_shown_b, prior)) / 2
