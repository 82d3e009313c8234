"""Judgments read from a model's token probabilities, where its engine gives them.

Small models judge badly by writing: asked for a letter they write prose, or
the same letter whatever the answers. Their probabilities say more. A verdict
here is the probability the model gives each allowed reply as the whole reply
(the letters A and B, the words GOOD and BAD), so it can only be one of them,
and it comes with how sure the model is (`ranking.verdicts`). The likelihood
of an answer is the model's own log-probability of writing it as the reply to
the question, per character: a model too small to judge by generating can
still rank answers by it (SmolLM2-135M scores 40.9 on HellaSwag by likelihood,
1.4 on GSM8K by generation).

Every reading raises NoProbabilities for an engine without probabilities; the
caller then falls back to parsing text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.records import GenerationRequest
from ranking.verdicts import two_way_share

from .base import Engine

PAIRWISE_REPLIES = ("A", "B")
COMPLETENESS_REPLIES = ("GOOD", "BAD")


def reply_probabilities(
    engine: Engine, request: GenerationRequest, replies: Sequence[str]
) -> tuple[float, ...]:
    """The probability of each of `replies` as the model's whole reply to `request`."""
    return tuple(math.exp(scored.logprob) for scored in engine.score_replies(request, replies))


def pairwise(engine: Engine, request: GenerationRequest) -> float | None:
    """P(A) among A and B for a pairwise prompt (`ranking.judging.pairwise_prompt`); None if both are 0."""
    return two_way_share(*reply_probabilities(engine, request, PAIRWISE_REPLIES))


def completeness(engine: Engine, request: GenerationRequest) -> float | None:
    """P(GOOD) among GOOD and BAD for a completeness prompt; None if both are 0."""
    return two_way_share(*reply_probabilities(engine, request, COMPLETENESS_REPLIES))


def likelihood(engine: Engine, request: GenerationRequest, answer: str) -> float | None:
    """The model's log-likelihood per character of `answer` as its reply to `request`; None for an empty
    answer, which has no characters to score."""
    return engine.score(request, answer).per_char if answer else None
