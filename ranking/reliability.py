"""How far a judge's verdicts can be trusted, learned from pairs whose better answer is known.

Crowd-BT (Chen et al., WSDM 2013) gives each judge k a reliability eta_k:
it says the truly better answer is better with probability eta_k, and the
other with 1 - eta_k. A judge at chance has eta = 1/2 and its votes carry
nothing; the optimal weight of an independent voter right with probability
eta is log(eta / (1 - eta)) (Nitzan and Paroush, 1982), zero at chance.

Here eta is not fitted jointly with the strengths: pairs whose better answer
is known (graded calibration answers, one right and one wrong; judging
challenges) measure it directly. Each labelled verdict adds the probability
the judge gave the better answer (1 or 0 for a hard pick, 1/2 for a U) to a
Beta(1, 1) prior. The weight is the log-odds of the posterior's lower 95%
bound: what the judge has shown, not what it might be. So a judge with few
pairs, or at chance, weighs about nothing, and ten lucky coin-flippers do not
add up to one judge that has been right again and again.

A judge below chance is discounted to zero, not trusted in reverse: a peer
could learn to be flipped and then steer every round it judges by lying in
the other direction.

Reliability is per routing cluster where the judge has MIN_CLUSTER_PAIRS
labelled pairs in it, over all its pairs otherwise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from scipy.stats import beta

from ranking.verdicts import logit

CREDENCE = 0.95  # the weight is read at the lower bound of this one-sided credible interval
MIN_CLUSTER_PAIRS = 20

_Key = TypeVar("_Key")


@dataclass(frozen=True, slots=True)
class Labelled:
    """One verdict on a pair whose better answer is known: the probability `right` the judge gave it."""

    judge: str
    cluster: int | None
    right: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.right) and 0 <= self.right <= 1):
            raise ValueError(f"a labelled verdict gives the better answer a probability, got {self.right!r}")


@dataclass(frozen=True, slots=True)
class Reliability:
    """A judge's record on `pairs` labelled pairs, `right` of them (fractionally) right."""

    pairs: int
    right: float

    @property
    def eta(self) -> float:
        """The posterior mean of the chance that the judge picks the better answer."""
        return (self.right + 1) / (self.pairs + 2)

    @property
    def weight(self) -> float:
        """The log-odds of the lower credible bound of eta; 0 at or below chance."""
        lower = float(beta.ppf(1 - CREDENCE, self.right + 1, self.pairs - self.right + 1))
        return max(0.0, logit(lower))


@dataclass(frozen=True, slots=True)
class Reliabilities:
    overall: dict[str, Reliability]
    by_cluster: dict[tuple[str, int], Reliability]

    def weight(self, judge: str, cluster: int | None = None) -> float:
        """The judge's weight in `cluster` where it has enough pairs there, else over all; 0 unmeasured."""
        local = self.by_cluster.get((judge, cluster)) if cluster is not None else None
        if local is not None and local.pairs >= MIN_CLUSTER_PAIRS:
            return local.weight
        record = self.overall.get(judge)
        return record.weight if record is not None else 0.0

    def weights(self, judges: Iterable[str], cluster: int | None = None) -> dict[str, float]:
        return {j: self.weight(j, cluster) for j in judges}


def fit(labelled: Iterable[Labelled]) -> Reliabilities:
    """Every judge's reliability from its labelled verdicts, over all and per cluster."""
    overall: dict[str, list[float]] = defaultdict(list)
    by_cluster: dict[tuple[str, int], list[float]] = defaultdict(list)
    for verdict in labelled:
        overall[verdict.judge].append(verdict.right)
        if verdict.cluster is not None:
            by_cluster[verdict.judge, verdict.cluster].append(verdict.right)
    return Reliabilities(_records(overall), _records(by_cluster))


def _records(groups: Mapping[_Key, list[float]]) -> dict[_Key, Reliability]:
    return {key: Reliability(len(rights), sum(rights)) for key, rights in groups.items()}
