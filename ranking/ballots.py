"""The probabilities a signed ballot carries beside its letters, checked the same way wherever it is read.

A ballot's `votes` are letters (A, B, U or null) and its `verdicts` words
(GOOD, BAD or null): the text reading, which every ballot has. A judge whose
engine gives token probabilities also says `"reading": "probability"` and
carries:

- `probabilities`: for each vote, in order, the judge's P(A) among A and B
  (`ranking.verdicts`), its letter the rounding (A above 1/2, B below, U at it);
- `good`: for each verdict, P(GOOD) among GOOD and BAD, GOOD from 1/2 up;
- `likelihoods`: for every candidate in its pairs, its model's log-likelihood
  per character of that answer (null for an empty one), a log-probability, so
  never above 0.

A ballot without `reading` is a text ballot. Anything else, a probability
outside [0, 1] or not finite, one missing for a vote or a candidate it was
given, a letter that is not its probability's rounding, makes the ballot
malformed (ValueError): the judge signed it, so it answers for it.

Likelihoods enter the ranking as that judge's soft votes on its own pairs:
P(first better) = sigmoid(LIKELIHOOD_SCALE * (L_first - L_second)).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ranking.bradley_terry import Vote
from ranking.verdicts import sigmoid

Reading = Literal["text", "probability"]
READINGS: tuple[Reading, ...] = ("text", "probability")
# How sure a difference of one nat per character of likelihood makes a likelihood vote; to be tuned on
# development data (bench.consensus).
LIKELIHOOD_SCALE = 5.0


@dataclass(frozen=True, slots=True)
class Probabilities:
    """What a ballot carries beyond its letters; empty for a text ballot."""

    reading: Reading = "text"
    shares: tuple[float, ...] | None = None  # per vote, P(A)
    good: dict[int, float] = field(default_factory=dict)  # per verdict, P(GOOD)
    likelihoods: dict[int, float | None] = field(default_factory=dict)


def read(
    body: Mapping[str, Any],
    letters: Sequence[Any],
    verdicts: Mapping[int, Any],
    pairs: Sequence[Sequence[int]],
) -> Probabilities:
    """The probabilities of a ballot whose votes are `letters` on `pairs` and whose verdicts are
    `verdicts` (by candidate); ValueError for anything malformed."""
    reading = body.get("reading", "text")
    if reading not in READINGS:
        raise ValueError(f"a ballot's reading is one of {READINGS}, not {reading!r}")
    if reading == "text":
        if any(key in body for key in ("probabilities", "good", "likelihoods")):
            raise ValueError("a text ballot carries no probabilities")
        return Probabilities()
    raw = body.get("probabilities")
    if not isinstance(raw, list) or len(raw) != len(letters):
        raise ValueError(f"a probability ballot has one probability per vote, {len(letters)}")
    shares = tuple(_probability(p) for p in raw)
    for vote, share in zip(letters, shares, strict=True):
        if vote != letter(share):
            raise ValueError(f"a vote {vote!r} with a probability of A of {share}")
    raw_good = _map(body.get("good"), "good")
    if set(raw_good) != set(verdicts):
        raise ValueError("a probability ballot has P(GOOD) for each verdict and no other")
    good = {cid: _probability(p) for cid, p in raw_good.items()}
    for cid, p in good.items():
        if verdicts[cid] != verdict(p):
            raise ValueError(f"a verdict {verdicts[cid]!r} with P(GOOD) {p}")
    raw_likelihoods = _map(body.get("likelihoods"), "likelihoods")
    if set(raw_likelihoods) != {cid for pair in pairs for cid in pair}:
        raise ValueError("a probability ballot has a likelihood for each candidate in its pairs and no other")
    likelihoods = {cid: None if v is None else _log_probability(v) for cid, v in raw_likelihoods.items()}
    return Probabilities("probability", shares, good, likelihoods)


def likelihood_votes(
    judge: str, pairs: Sequence[Sequence[int]], likelihoods: Mapping[int, float | None]
) -> list[Vote]:
    """The judge's soft votes on its pairs from its likelihoods; none on a pair with an empty answer."""
    votes = []
    for first, second in pairs:
        a, b = likelihoods[first], likelihoods[second]
        if a is not None and b is not None:
            votes.append(Vote.soft(judge, first, second, sigmoid(LIKELIHOOD_SCALE * (a - b))))
    return votes


def _map(raw: Any, name: str) -> dict[int, Any]:
    """A map by candidate id as JSON writes one ("0", "1", ...), read back to ints."""
    if not isinstance(raw, dict) or not all(isinstance(k, str) and k.isascii() and k.isdigit() for k in raw):
        raise ValueError(f"a probability ballot's {name} is a map by candidate")
    return {int(k): v for k, v in raw.items()}


def _probability(p: Any) -> float:
    if isinstance(p, bool) or not isinstance(p, int | float) or not math.isfinite(p) or not 0 <= p <= 1:
        raise ValueError(f"a probability is a finite number in [0, 1], got {p!r}")
    return float(p)


def _log_probability(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v > 0:
        raise ValueError(f"a log-likelihood is a finite number at most 0, got {v!r}")
    return float(v)


def letter(share: float) -> str:
    """The letter a vote of P(A) `share` says."""
    return "A" if share > 0.5 else "B" if share < 0.5 else "U"


def verdict(good: float) -> str:
    """The word a check of P(GOOD) `good` says."""
    return "GOOD" if good >= 0.5 else "BAD"
