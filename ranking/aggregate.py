"""The round's winner from its votes, its GOOD/BAD checks and what each candidate says.

Among the candidates most of whose readable checks said GOOD (all of them if
none has such checks), the answer with the most Bradley-Terry strength behind
it wins, and its strongest candidate with it. Approval needs evidence: a
candidate nobody could check is not preferred over one a judge found BAD, or a
judge that can't answer the check would decide the round by its silence.

Candidates that say the same thing (the same option letter, the same first
line) pool their strength, so two weaker answers that agree can outweigh a
stronger one alone; with answers all different, it is the plain Bradley-Terry
winner. Ties go to the candidate listed first (the one routed first).

With answerer priors (`ranking.priors.log_odds` of each candidate's model's
calibrated accuracy) the pooling is on the log-odds scale, where Bradley-Terry
strengths live too: a candidate scores its prior plus its centred log strength,
and an answer the sum of its candidates' scores. Judges that carry no signal
(all weights zero) leave every strength level, so the decision is then exactly
the calibration-weighted vote; judges with signal move it from there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ranking import bradley_terry
from ranking.bradley_terry import Ranking, Vote
from ranking.majority import weighted_majority

GOOD_THRESHOLD = 0.5


@dataclass(frozen=True, slots=True)
class Decision:
    winner: int  # a candidate index
    ranking: Ranking


def approved(good: Mapping[int, tuple[int, int]], cid: int, threshold: float = GOOD_THRESHOLD) -> bool:
    """Whether the checks of candidate `cid`, (GOOD, GOOD + BAD), found it GOOD often enough."""
    yes, total = good.get(cid, (0, 0))
    return total > 0 and yes / total >= threshold


def decide(
    said: Sequence[str],
    votes: Sequence[Vote],
    weights: Mapping[str, float],
    good: Mapping[int, tuple[int, int]],
    order: Sequence[int],
    *,
    good_threshold: float = GOOD_THRESHOLD,
    priors: Sequence[float] | None = None,
) -> Decision:
    """`said[cid]` is candidate cid's answer normalised (distinct for answers that can't be read),
    `votes` need a weight for every judge in `weights`, and `order` lists the candidates in order of
    preference for ties. There must be at least one vote, unless `priors` (one log-odds weight per
    candidate) are given."""
    if not votes and priors is None:
        raise ValueError("a decision needs votes")
    ranking = bradley_terry.fit(len(said), votes, {v.judge: weights[v.judge] for v in votes})
    passed = {cid for cid in order if approved(good, cid, good_threshold)} or set(order)
    if priors is not None:
        return _decide_with_priors(said, ranking, passed, order, priors)
    pooled = weighted_majority(
        [said[cid] for cid in order], [ranking.strengths[cid] if cid in passed else 0.0 for cid in order]
    )
    assert pooled is not None  # every candidate says something
    winner = max((order[i] for i in pooled.supporters), key=lambda cid: ranking.strengths[cid])
    return Decision(winner, ranking)


def _decide_with_priors(
    said: Sequence[str], ranking: Ranking, passed: set[int], order: Sequence[int], priors: Sequence[float]
) -> Decision:
    if len(priors) != len(said):
        raise ValueError("one prior per candidate")
    logs = [math.log(s) for s in ranking.strengths]
    centre = sum(logs) / len(logs)
    score = [prior + log - centre for prior, log in zip(priors, logs, strict=True)]
    # A candidate that failed its checks lends nothing: on this scale a zero is not nothing.
    pooled = weighted_majority(
        [said[cid] if cid in passed else None for cid in order], [score[cid] for cid in order]
    )
    assert pooled is not None  # at least one candidate passed
    winner = max((order[i] for i in pooled.supporters), key=lambda cid: round(score[cid], 12))
    return Decision(winner, ranking)
