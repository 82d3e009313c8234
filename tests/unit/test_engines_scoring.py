"""What scoring a continuation means for engines: the grammar that forces a text, and no probabilities."""

from __future__ import annotations

import pytest

from core.records import Generation, GenerationRequest, Message, ModelInfo, Usage
from node.engines import readings
from node.engines.base import Engine, NoProbabilities, Scored
from node.engines.llamacpp import literal_grammar


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
