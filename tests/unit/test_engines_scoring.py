"""What scoring a continuation means for engines: the grammar that forces a text, and no probabilities."""

from __future__ import annotations

import math
import re

import pytest

from core.records import Generation, GenerationRequest, Message, ModelInfo, Usage
from node.engines import readings
from node.engines.base import Engine, NoProbabilities, Scored
from node.engines.llamacpp import literal_grammar
from ranking import ballots, bradley_terry
from ranking.bradley_terry import Vote
from ranking.verdicts import both_orders


def test_the_literal_grammar_escapes_what_gbnf_would_read() -> None:
    assert literal_grammar("A") == 'root ::= "A"'
    assert literal_grammar('say "x"\\') == 'root ::= "say \\"x\\"\\\\"'
    assert literal_grammar("a\nb\tc\r\x01é") == 'root ::= "a\\nb\\tc\\r\\x01é"'
    with pytest.raises(ValueError, match="empty"):
        literal_grammar("")


def test_the_score_per_character_is_length_normalised() -> None:
    scored = Scored((-1.0, -2.0, -3.0), 12)
    assert scored.logprob == -6.0 and scored.per_char == -0.5


class TextOnly(Engine):
    """An engine that only writes, as a remote OpenAI-style server without log-probabilities does."""

    info = ModelInfo("m", "openai", "http://upstream", 1024, True, "remote")

    def generate(self, request: GenerationRequest, method: object = None) -> Generation:
        return Generation("A", "stop", Usage(1, 1))

    def stream(self, request: GenerationRequest, sink: object, method: object = None) -> Generation:
        return self.generate(request)

    def restart(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_an_engine_without_probabilities_says_so() -> None:
    request = GenerationRequest(model="m", messages=(Message("user", "hi"),))
    with pytest.raises(NoProbabilities):
        readings.pairwise(TextOnly(), request)


class Knower(TextOnly):
    """An engine whose model knows the right answer, in whichever slot a prompt shows it, and gives
    token probabilities to say so."""

    RIGHT = "4"

    def score(self, request: GenerationRequest, continuation: str) -> Scored:
        assert request.messages is not None
        text = request.messages[-1].content
        shown = re.search(r"<answer_a>\n(.*?)\n</answer_a>", text) or re.search(r"<answer>\n(.*?)\n", text)
        if shown is None:  # the question alone: the likelihood of `continuation` as the answer
            return Scored((-0.1 if continuation == self.RIGHT else -2.0,), len(continuation))
        first_is_right = shown[1] == self.RIGHT
        says_first = continuation in ("A", "GOOD")
        return Scored((math.log(0.9 if first_is_right == says_first else 0.1),), len(continuation))


def test_a_judge_that_knows_the_right_answer_makes_it_win_whichever_slot_shows_it() -> None:
    """P(A) is the first candidate of the pair winning, from the judge's prompt to the fitted ranking:
    the right answer, shown as A in one pair and as B in the other, gets more than half of each."""
    answers = {0: "banana", 1: Knower.RIGHT, 2: "seven"}
    pairs = [(0, 1), (1, 0), (1, 2), (2, 0)]
    body = readings.ballot(Knower(), lambda r: r, "m", "What is 2+2?", answers, pairs, [0, 1, 2])
    verdicts = {int(cid): word for cid, word in body["verdicts"].items()}
    read = ballots.read(body, [v[2] for v in body["votes"]], verdicts, pairs)
    assert body["votes"][:3] == [[0, 1, "B"], [1, 0, "A"], [1, 2, "A"]]
    assert read.shares is not None and both_orders(read.shares[1], read.shares[0]) > 0.5
    assert body["verdicts"] == {"0": "BAD", "1": "GOOD", "2": "BAD"}
    votes = [Vote.soft("j", a, b, p) for (a, b), p in zip(pairs, read.shares, strict=True)]
    assert all(v.first_wins > 0.5 for v in votes if v.first == 1)
    assert all(v.first_wins < 0.5 for v in votes if v.second == 1)
    assert bradley_terry.fit(3, votes).order[0] == 1
    assert bradley_terry.fit(3, ballots.likelihood_votes("j", pairs, read.likelihoods)).order[0] == 1
