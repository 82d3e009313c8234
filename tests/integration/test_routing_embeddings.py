"""The real all-MiniLM-L6-v2: paraphrases land closer than unrelated questions."""

from __future__ import annotations

import numpy as np
import pytest

from routing.embeddings import Embedder, MiniLMEmbedder


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    # scripts/setup.sh installs the model package: a missing one is a failure, not a skip.
    return MiniLMEmbedder()


def test_paraphrases_are_closer_than_unrelated(embedder: Embedder) -> None:
    texts = [
        "What is the capital city of France?",
        "Which city is France's capital?",
        "Write a Python function that reverses a linked list.",
    ]
    vectors = embedder.embed(texts)
    assert vectors.shape == (3, 384)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_cached_texts_come_back_identical(embedder: MiniLMEmbedder) -> None:
    first = embedder.embed(["How many moons does Mars have?", "2 + 2 = ?"])
    again = embedder.embed(["2 + 2 = ?", "How many moons does Mars have?", "2 + 2 = ?"])
    assert np.array_equal(again, first[[1, 0, 1]])
