"""A question's domain: the nearest domain centroid, by cosine, in the router's embedding space."""

from __future__ import annotations

import numpy as np

from core.records import GENERAL
from routing import domains
from routing.clusters import normalise
from routing.datasets import DATASET_DOMAINS


def embed(texts: list[str]) -> np.ndarray:
    """A stand-in embedder: a text's vector counts its words about medicine, logic and code."""
    words = ({"drug", "dose"}, {"therefore", "premise"}, {"def", "return"})
    return np.array([[1.0 + 3 * sum(w in t.split() for w in group) for group in words] for t in texts])


def test_a_question_goes_to_the_domain_whose_questions_its_embedding_lies_nearest() -> None:
    centroids = domains.centroids(
        {"medical": ["drug dose", "the dose"], "logic": ["therefore premise"], "code": ["def return"]}, embed
    )
    assert set(centroids) == {"medical", "logic", "code"}
    assert all(abs(np.linalg.norm(c) - 1) < 1e-9 for c in centroids.values())
    query = normalise(embed(["which drug at what dose"]))[0]
    assert domains.nearest(query, centroids) == "medical"
    assert domains.nearest(normalise(embed(["def f(): return"]))[0], centroids) == "code"


def test_without_an_embedding_or_centroids_a_question_is_general() -> None:
    assert domains.nearest(None, {"code": np.ones(3) / np.sqrt(3)}) == GENERAL
    assert domains.nearest(np.ones(3), {}) == GENERAL


def test_every_data_set_stands_for_one_domain_and_samples_come_from_the_installed_sets() -> None:
    assert set(DATASET_DOMAINS.values()) == {"general", "medical", "logic", "code"}
    found = domains.samples(per_dataset=3)
    assert all(0 < len(questions) <= 3 for questions in found.values())
