"""What the dashboard is told: a round's phases in order through RoundService's observer, kept bounded by
the Watch; the models' and the reputation's series; the ledger's check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from accel.methods import Method
from consensus import Ledger
from core.identity import Identity
from core.records import Generation, GenerationRequest, Message, ModelInfo, Usage
from node.engines.base import Engine, TextSink
from node.events import EventBus
from node.hosting import HostedModel
from node.ledger import LedgerService
from node.metrics import NodeMetrics
from node.rounds import Answerer, RoundEvent, RoundResult, RoundService
from node.watch import Watch
from tests.unit.test_consensus_ledger import PASS, challenge_record


class Parrot(Engine):
    """Says the same thing to every prompt, a token at a time."""

    def __init__(self, name: str, answer: str) -> None:
        self.info = ModelInfo(name, "test", "-", 256, True, "cpu")
        self.answer = answer

    def generate(self, request: GenerationRequest, method: Method | None = None) -> Generation:
        return self.stream(request, lambda _: False, method)

    def stream(self, request: GenerationRequest, sink: TextSink, method: Method | None = None) -> Generation:
        for word in self.answer.split():
            sink(word + " ")
        return Generation(self.answer, "stop", Usage(4, len(self.answer.split())))

    def restart(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def identity(tmp_path: Path) -> Identity:
    return Identity.load_or_create(tmp_path / "node")


def hosted(metrics: NodeMetrics, *engines: Engine) -> dict[str, HostedModel]:
    return {e.info.name: HostedModel(e, metrics) for e in engines}


def question() -> GenerationRequest:
    return GenerationRequest(model="", messages=(Message("user", "Capital of France?"),), max_tokens=8)


def fake_report(result: RoundResult) -> dict[str, Any]:
    assert result.answer is not None
    return {"answered_by": {"model": result.answer.model, "peer_id": result.answer.peer_id}}


async def test_the_observer_hears_every_phase_of_a_round_in_order(identity: Identity) -> None:
    metrics = NodeMetrics()
    models = hosted(metrics, Parrot("a", "Paris"), Parrot("b", "Lyon"))
    for model in models.values():
        model.attach(None)  # type: ignore[arg-type]  # nothing here streams or restarts
    heard: list[tuple[str, int]] = []
    rounds = RoundService(
        identity,
        None,
        models,
        lambda: [identity.peer_id],
        observer=lambda e: heard.append((e.phase, len(e.result.candidates))),
    )
    answerers = [Answerer("a", identity.peer_id), Answerer("b", identity.peer_id)]
    result = await rounds.run(question(), "Capital of France?", answerers, "consensus", routing=None)
    # Both answers are this node's own, so it judges none: the round has no votes and says so.
    assert heard == [("started", 0), ("committed", 0), ("revealed", 2), ("judged", 2), ("finished", 2)]
    assert result.committed == answerers and result.degraded == "no judge voted: the best routed answer"


async def test_an_observer_that_fails_does_not_break_the_round(identity: Identity) -> None:
    models = hosted(NodeMetrics(), Parrot("a", "Paris"))

    def broken(event: RoundEvent) -> None:
        raise RuntimeError("a bug in whoever watches")

    rounds = RoundService(identity, None, models, list, observer=broken)
    result = await rounds.run(question(), "q", [Answerer("a", identity.peer_id)], "consensus")
    assert result.answer is not None and result.answer.text == "Paris"


async def test_the_watch_keeps_the_last_rounds_and_tells_the_bus(identity: Identity) -> None:
    metrics = NodeMetrics()
    models = hosted(metrics, Parrot("a", "Paris"))
    bus = EventBus()
    watch = Watch(bus, models, metrics, fake_report, rounds_kept=2)
    subscription = bus.subscribe()
    rounds = RoundService(identity, None, models, list, observer=watch.on_round)
    ids = []
    for i in range(3):
        long = f"question {i} " + "x" * 400
        ids.append((await rounds.run(question(), long, [Answerer("a", identity.peer_id)], "vote")).round_id)
    assert [r["round_id"] for r in watch.rounds()] == [ids[2], ids[1]]  # newest first, two kept
    assert watch.round(ids[0]) is None
    kept = watch.round(ids[2])
    assert kept is not None and kept["phase"] == "finished"
    assert kept["report"] == {"answered_by": {"model": "a", "peer_id": identity.peer_id}}
    assert len(kept["question"]) <= 281 and kept["question"].endswith("…")
    assert kept["answerers"] == [{"model": "a", "peer_id": identity.peer_id}]  # from the started phase
    phases = [e.data["phase"] async for e in _drain(subscription, bus.seq)]
    assert phases == ["started", "committed", "revealed", "finished"] * 3  # a vote has no judging


async def _drain(subscription: Any, last: int) -> Any:
    async for event in subscription:
        yield event
        if event.seq == last:
            return


async def test_the_watch_samples_the_models_into_bounded_series(identity: Identity) -> None:
    metrics = NodeMetrics()
    models = hosted(metrics, Parrot("a", "one two three four five six seven eight nine"))
    models["a"].attach(None)  # type: ignore[arg-type]
    watch = Watch(EventBus(), models, metrics, fake_report, series_length=3)
    await models["a"].generate(GenerationRequest(model="a", messages=(Message("user", "hi"),), max_tokens=9))
    first = watch.sample_models()["a"]
    assert first["waiting"] == 0 and first["running"] == 0 and first["state"] == "ready"
    assert first["ttft_s"] is not None and first["ttft_s"] >= 0
    assert first["tokens_per_s"] is not None
    assert watch.sample_models()["a"]["ttft_s"] is None  # no request since the last sample
    for _ in range(5):
        watch.sample_models()
    assert len(watch.model_series["a"]) == 3


async def test_the_watch_samples_reputation_when_the_ledger_moves_and_verifies_it(
    identity: Identity, tmp_path: Path
) -> None:
    ledger = LedgerService(identity, None, Ledger(tmp_path / "ledger.db"))
    other = Identity.load_or_create(tmp_path / "other")
    bus = EventBus()
    watch = Watch(bus, {}, NodeMetrics(), fake_report, ledger=ledger)
    assert watch.sample_ledger() and not watch.sample_ledger()  # the first look, then nothing new
    ledger.record(
        "challenge", challenge_record(other, PASS, 0, by=identity)
    )  # in a new network, anyone's counts
    assert watch.sample_ledger()
    series = watch.reputation.to_json()
    assert len(series["at"]) == 2 and series["values"][other.peer_id][-1] > 0
    view = watch.ledger_view()
    assert view["entries"] == 1 and [r["peer_id"] for r in view["reputation"]] == [other.peer_id]
    assert view["reputation"][0]["eligible"] and view["series"] == series
    checked = await watch.verify()
    assert checked["ok"] and checked["entries"] == len(ledger.ledger) and checked["head"] == view["head"]
    assert await watch.verify() is checked  # nothing new: the same check
    ledger.ledger.close()
