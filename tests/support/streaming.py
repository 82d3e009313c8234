"""Streaming checks shared by the engine tests: every engine owes the same contract."""

from __future__ import annotations

from core.records import GenerationRequest
from node.engines.base import Engine


class Collect:
    """A TextSink that keeps every piece and asks the engine to stop once it holds `cancel_after`."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.pieces: list[str] = []
        self._cancel_after = cancel_after

    def __call__(self, piece: str) -> bool:
        self.pieces.append(piece)
        return self._cancel_after is not None and len(self.pieces) >= self._cancel_after

    @property
    def text(self) -> str:
        return "".join(self.pieces)


def assert_stream_matches_generate(engine: Engine, request: GenerationRequest) -> None:
    """For a deterministic request, streaming hands out in pieces exactly what generate returns."""
    sink = Collect()
    generation = engine.stream(request, sink)
    assert len(sink.pieces) > 1
    assert sink.text == generation.text
    assert generation == engine.generate(request)
