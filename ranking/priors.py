"""What a candidate is worth before any judge looks at it: how often its model is right here.

The calibration runs (`swarm calibrate`) grade every model on questions of
each routing cluster, which gives a model's accuracy p where the question
falls. For independent voters of known accuracy the vote that is right most
often weighs each by its log-odds (Nitzan and Paroush, 1982): log(p / (1 - p)),
or log((K - 1) p / (1 - p)) among K options, where a blind guess (p = 1/K)
weighs nothing and one worse than that counts against its answer. Candidates
that say the same thing pool their weights: the calibration-weighted vote
(`ranking.majority.weighted_majority` over these weights), which with equal
accuracies is the plain majority. `ranking.aggregate.decide` starts from it.

An open question has no listed options; it is weighed as if it had
OPEN_OPTIONS plausible answers, so that a model right a fifth of the time still
lends its answer some weight (answers that agree by chance are rare there).
"""

from __future__ import annotations

import math

from ranking.verdicts import logit

OPEN_OPTIONS = 10


def log_odds(accuracy: float, options: int | None = None) -> float:
    """The weight of an answerer right with probability `accuracy`; `options`: how many a question lists
    (None: an open question, weighed as OPEN_OPTIONS)."""
    if not (math.isfinite(accuracy) and 0 <= accuracy <= 1):
        raise ValueError(f"an accuracy is a probability, got {accuracy!r}")
    if options is not None and options < 2:
        raise ValueError(f"a question lists at least two options, got {options}")
    return logit(accuracy) + math.log((options or OPEN_OPTIONS) - 1)
