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
"""

from __future__ import annotations

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
) -> Decision:
    """`said[cid]` is candidate cid's answer normalised (distinct for answers that can't be read),
    `votes` need a weight for every judge in `weights`, and `order` lists the candidates in order of
    preference for ties. There must be at least one vote."""
    if not votes:
        raise ValueError("a decision needs votes")
    ranking = bradley_terry.fit(len(said), votes, {v.judge: weights[v.judge] for v in votes})
    passed = {cid for cid in order if approved(good, cid, good_threshold)} or set(order)
    pooled = weighted_majority(
        [said[cid] for cid in order], [ranking.strengths[cid] if cid in passed else 0.0 for cid in order]
    )
    assert pooled is not None  # every candidate says something
    winner = max((order[i] for i in pooled.supporters), key=lambda cid: ranking.strengths[cid])
    return Decision(winner, ranking)
