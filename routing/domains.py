"""A question's domain (core.records.DOMAINS): the one whose known questions its embedding lies nearest.

Each domain is stood for by the centroid of the embedded questions of its data
sets (civics for general, medmcqa, logiqa, HumanEval), so a question reads as
medical, logic, code or general the way the routing clusters read it: by
meaning, in the router's embedding space. Pure but for `samples`, which reads
the offline data sets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from core.records import DOMAINS, GENERAL, Domain
from routing.clusters import normalise
from routing.datasets import DATASET_DOMAINS, DatasetError, load

# Questions per data set that stand for its domain: enough for a stable centroid, few to embed.
SAMPLES_PER_DATASET = 60


def samples(per_dataset: int = SAMPLES_PER_DATASET) -> dict[Domain, list[str]]:
    """Up to `per_dataset` questions of each domain's data set, the first in the set's order; a domain
    whose data set is not installed has none."""
    found: dict[Domain, list[str]] = {}
    for dataset, domain in DATASET_DOMAINS.items():
        try:
            found.setdefault(domain, []).extend(item.question for item in load(dataset)[:per_dataset])
        except DatasetError:
            continue
    return {d: q for d, q in found.items() if q}


def centroids(
    questions: Mapping[Domain, Sequence[str]], embed: Callable[[Sequence[str]], np.ndarray]
) -> dict[Domain, np.ndarray]:
    """Each domain's unit centroid of its questions' embeddings."""
    out = {}
    for domain in DOMAINS:
        if questions.get(domain):
            mean = normalise(embed(list(questions[domain]))).mean(axis=0)
            out[domain] = mean / np.linalg.norm(mean)
    return out


def nearest(query: np.ndarray | None, domain_centroids: Mapping[Domain, np.ndarray]) -> Domain:
    """The domain whose centroid is nearest (by cosine) the query; GENERAL without a query or centroids."""
    if query is None or not domain_centroids:
        return GENERAL
    ranked = sorted(domain_centroids, key=lambda d: (-float(np.dot(domain_centroids[d], query)), d))
    return ranked[0]
