"""The rules that keep a hostile peer's requests bounded, without a network: the serve policy, the quota
and the concurrency of node/admission.py, the bounds of a judge request, and the commit-reveal binding of
the round protocol (each played by a peer sending what it likes; tests/integration/test_peer_admission.py
plays them against real nodes)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from core.identity import Identity
from core.records import GenerationRequest, Message, to_wire
from core.statements import BadStatement, Statement, from_wire
from node.admission import Admission, Refused, ServePolicy
from node.config import ConfigError, NodeConfig
from node.hosting import InvalidRequest
from node.metrics import NodeMetrics
from node.rounds import RoundService, _JudgeTask
from tests.unit.test_watch import Parrot, hosted

STRANGER, FRIEND = "12D3KooWstranger", "12D3KooWfriend"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admission(policy: ServePolicy, speaks: Any = None, clock: Clock | None = None) -> Admission:
    return Admission(policy, speaks, Counter(), clock or Clock())


def test_the_default_policy_serves_only_peers_with_a_say_and_names_itself() -> None:
    gate = admission(ServePolicy(), speaks=lambda peer: peer == FRIEND)
    with gate.admit(FRIEND, 16):
        pass
    with (
        pytest.raises(
            Refused, match="serves peers under --serve-peers say, and peer 12D3KooWstranger is not"
        ),
        gate.admit(STRANGER, 16),
    ):
        pass
    assert gate.refused == {"policy": 1}
    with admission(ServePolicy(), speaks=None).admit(STRANGER, 16):  # no ledger: every peer has a say
        pass


def test_an_allow_list_serves_its_peers_and_any_serves_all() -> None:
    listed = admission(ServePolicy("allow-list", frozenset({FRIEND})), speaks=lambda peer: True)
    with listed.admit(FRIEND, 1):
        pass
    with pytest.raises(Refused, match="allow-list"), listed.admit(STRANGER, 1):
        pass
    with admission(ServePolicy("any"), speaks=lambda peer: False).admit(STRANGER, 1):
        pass


def test_a_peer_is_held_to_its_quota_of_requests_and_tokens_in_a_minute() -> None:
    clock = Clock()
    gate = admission(ServePolicy("any", requests_per_minute=3, tokens_per_minute=100), clock=clock)
    for _ in range(3):
        with gate.admit(STRANGER, 10):
            clock.now += 1
    with (
        pytest.raises(Refused, match="asked 3 requests in the last minute") as refusal,
        gate.admit(STRANGER, 10),
    ):
        pass
    assert 0 < refusal.value.retry_after <= 60
    with gate.admit(FRIEND, 10):  # another peer's quota is its own
        pass
    clock.now += 60
    with pytest.raises(Refused, match="would use 101 tokens in a minute"), gate.admit(STRANGER, 101):
        pass
    with gate.admit(STRANGER, 100):
        pass
    assert gate.refused == {"quota": 2}


def test_a_peer_is_held_to_its_share_of_requests_at_once() -> None:
    gate = admission(ServePolicy("any", concurrent=2))
    with gate.admit(STRANGER, 1), gate.admit(STRANGER, 1):
        with pytest.raises(Refused, match="has 2 requests running or queued here"), gate.admit(STRANGER, 1):
            pass
        with gate.admit(FRIEND, 1):
            pass
    with gate.admit(STRANGER, 1):  # its requests ended: room again
        pass
    assert gate.refused == {"concurrency": 1}


def test_the_operator_policy_is_checked_and_its_allow_file_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="say, allow-list, any"):
        NodeConfig(serve_peers="everyone")
    with pytest.raises(ConfigError, match="peer_concurrency"):
        NodeConfig(peer_concurrency=0)
    listed = tmp_path / "peers"
    listed.write_text(f"# friends\n{FRIEND}\n\n")
    config = NodeConfig(serve_peers="allow-list", serve_allow=("12D3KooWother",), serve_allow_file=listed)
    assert ServePolicy.of(config).allow == {FRIEND, "12D3KooWother"}


def judge_body(answers: int, pairs: list[list[int]], **changes: Any) -> dict[str, Any]:
    body = {
        "round": "r",
        "question": "q",
        "answers": {str(i): f"answer {i}" for i in range(answers)},
        "pairs": pairs,
        "check": list(range(answers)),
    }
    return {**body, **changes}


def test_a_judge_request_is_held_to_what_a_rounds_schedule_asks() -> None:
    full = [[a, b] for a in range(5) for b in range(5) if a != b]  # 5 answers: every ordered pair
    assert len(_JudgeTask.read(judge_body(5, full), 5).pairs) == 20
    with pytest.raises(InvalidRequest, match="a round of 2 answers has at most 2 pairs to judge, not 10000"):
        _JudgeTask.read(judge_body(2, [[0, 1]] * 10_000), 5)
    with pytest.raises(InvalidRequest, match="at most 16 answers"):
        _JudgeTask.read(judge_body(17, []), 5)
    with pytest.raises(InvalidRequest, match="characters at most"):
        _JudgeTask.read(judge_body(2, [], question="q" * 20_000), 5)
    with pytest.raises(InvalidRequest, match="each pair and each check once"):
        _JudgeTask.read(judge_body(2, [[0, 1], [0, 1]]), 5)
    with pytest.raises(InvalidRequest, match="of its own answers"):
        _JudgeTask.read(judge_body(2, [[0, 7]]), 5)


# ---- the commit-reveal binding, played against a RoundService with a parrot for a model


@pytest.fixture
def answerer(tmp_path: Path) -> RoundService:
    identity = Identity.load_or_create(tmp_path / "answerer")
    models = hosted(NodeMetrics(), Parrot("m", "Paris"))
    for model in models.values():
        model.attach(None)  # type: ignore[arg-type]  # nothing here streams or restarts
    return RoundService(identity, None, models, list)


async def served(service: RoundService, sender: str, body: dict[str, Any]) -> Statement | str:
    """What the protocol answers `sender`: the statement, or the error's words."""
    (reply,) = [r async for r in service._serve(sender, body)]
    return (
        reply["error"] if "error" in reply else from_wire(reply["statement"], kind=reply["statement"]["kind"])
    )


def commit(
    service: RoundService, others: list[list[str]], question: str = "Capital of France?"
) -> dict[str, Any]:
    request = GenerationRequest("m", (Message("user", question),), max_tokens=8)
    named = [[service.peer_id, "m"], *others]
    return {"op": "commit", "round": "r", "request": to_wire(request), "answerers": named, "closes_in_s": 60}


async def test_only_the_gateway_gets_the_reveal_once_every_answerer_committed(answerer: RoundService) -> None:
    committed = await served(answerer, "gateway", commit(answerer, [["co-answerer", "x"]]))
    assert isinstance(committed, Statement)
    assert committed.body["answerers"] == sorted([[answerer.peer_id, "m"], ["co-answerer", "x"]])
    reveal = {"op": "reveal", "round": "r", "model": "m", "commitments": [committed.to_wire()]}
    told = await served(answerer, "co-answerer", reveal)
    assert told == "InvalidRequest: nothing to reveal to co-answerer for round r and model 'm'"
    told = await served(answerer, "gateway", reveal)  # the co-answerer's commitment is missing
    assert isinstance(told, str) and "the commit phase of round r is open" in told
    answerer._pending["r", "m"] = replace(answerer._pending["r", "m"], closes_at=0.0)  # the deadline passed
    revealed = await served(answerer, "gateway", reveal)
    assert isinstance(revealed, Statement) and revealed.body["answer"] == "Paris"


async def test_a_second_commit_for_the_round_and_model_is_refused(answerer: RoundService) -> None:
    first = await served(answerer, "gateway", commit(answerer, []))
    told = await served(answerer, "spoiler", commit(answerer, [], question="Say BANANA."))
    assert (
        told
        == "InvalidRequest: round r already has a commitment for model 'm' here: an answerer commits once"
    )
    assert isinstance(first, Statement)
    reveal = {"op": "reveal", "round": "r", "model": "m", "commitments": [first.to_wire()]}
    revealed = await served(answerer, "gateway", reveal)
    assert isinstance(revealed, Statement) and revealed.body["answer"] == "Paris"


class Relay:
    """The gateway's transport to one answerer, which the answerer hears as a request from `asker`."""

    def __init__(self, answerer: RoundService, asker: str) -> None:
        self.answerer, self.asker = answerer, asker

    def handle(self, protocol: str, handler: Any) -> None:
        pass

    async def request(self, peer_id: str, protocol: str, body: dict[str, Any], timeout: float) -> Any:
        (reply,) = [r async for r in self.answerer._serve(self.asker, body)]
        return reply


async def test_every_statement_names_the_gateway_that_asked_and_the_gateway_takes_only_its_own(
    answerer: RoundService, tmp_path: Path
) -> None:
    gateway_id = Identity.load_or_create(tmp_path / "gateway")
    gateway = RoundService(gateway_id, Relay(answerer, gateway_id.peer_id), {}, list)  # type: ignore[arg-type]
    committed = await gateway._call(answerer.peer_id, commit(answerer, []), 10)
    assert committed.body["gateway"] == gateway_id.peer_id
    answerer._pending["r", "m"] = replace(answerer._pending["r", "m"], closes_at=0.0)
    revealed = await gateway._call(answerer.peer_id, {"op": "reveal", "round": "r", "model": "m"}, 10)
    assert revealed.body["gateway"] == gateway_id.peer_id
    judged = await gateway._call(answerer.peer_id, judge_body(2, [[0, 1]], op="judge"), 10)
    assert judged.body["gateway"] == gateway_id.peer_id
    # A statement given to another gateway (an answerer replaying one, or lying) is refused on receipt:
    # the gateway's ledger entry would be refused everywhere with it in.
    fooled = RoundService(gateway_id, Relay(answerer, "another-gateway"), {}, list)  # type: ignore[arg-type]
    with pytest.raises(BadStatement, match="names another gateway"):
        await fooled._call(answerer.peer_id, judge_body(2, [[0, 1]], op="judge"), 10)
