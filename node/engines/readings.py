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
caller then falls back to parsing text. `ballot` reads a judge's whole task
this way, in the form a signed ballot carries it (`ranking.ballots`). An
answer's likelihood is read from its first LIKELIHOOD_MAX_CHARS characters:
llama.cpp scores a given text one token at a time, and a judge's work must stay
bounded whatever answers it is sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.records import GenerationRequest, Message
from ranking import ballots, judging
from ranking.verdicts import two_way_share

from .base import Engine

PAIRWISE_REPLIES = ("A", "B")
COMPLETENESS_REPLIES = ("GOOD", "BAD")
LIKELIHOOD_MAX_CHARS = 600


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
    return engine.score(request, answer[:LIKELIHOOD_MAX_CHARS]).per_char if answer else None


def ballot(
    engine: Engine,
    prepare: Callable[[GenerationRequest], GenerationRequest],
    model: str,
    question: str,
    answers: Mapping[int, str],
    pairs: Sequence[tuple[int, int]],
    check: Sequence[int],
) -> dict[str, Any]:
    """A judge's task read from probabilities: the ballot's votes and verdicts (the rounding of each
    probability, `ranking.ballots`), the probabilities, and the likelihood of every answer in its pairs.
    `prepare` shapes a request for the model (a base model gets a completion prompt)."""

    def ask(messages: tuple[Message, ...]) -> GenerationRequest:
        return prepare(GenerationRequest(model=model, messages=messages, max_tokens=1, temperature=0.0))

    shares = [
        _or_half(pairwise(engine, ask(judging.pairwise_prompt(question, answers[a], answers[b], tie=False))))
        for a, b in pairs
    ]
    good = {
        cid: _or_half(completeness(engine, ask(judging.completeness_prompt(question, answers[cid]))))
        for cid in check
    }
    asked = ask((Message("user", question),))
    scored = sorted({cid for pair in pairs for cid in pair})
    return {
        "reading": "probability",
        "votes": [[a, b, ballots.letter(p)] for (a, b), p in zip(pairs, shares, strict=True)],
        "verdicts": {str(cid): ballots.verdict(p) for cid, p in good.items()},
        "probabilities": shares,
        "good": {str(cid): p for cid, p in good.items()},
        "likelihoods": {str(cid): likelihood(engine, asked, answers[cid]) for cid in scored},
    }


def _or_half(share: float | None) -> float:
    """A reading whose options both got nothing is no information: one half."""
    return 0.5 if share is None else share
