"""Consensus rounds on a real 3-node testnet, through the API and against misbehaving peers.

The misbehaving peers (a copycat answerer, a judge that never answers, judges
whose ballots are forged or malformed) are real libp2p peers in this test
process, speaking the round protocol with a twist; the gateway that faces
them is this process's own RoundService, talking to the real nodes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import swarm
from core.identity import Identity
from core.records import GenerationRequest, Message
from core.statements import Statement, commitment_digest, from_wire, sign
from node.ports import free_port
from node.rounds import SENDER, Answerer, RoundConfig, RoundService
from node.transport import Transport
from testnet.testnet import Testnet

SMOLLM, GEMMA, QWEN = "smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"
QUESTION = "What is the capital of France? Answer in one word."


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Testnet:
    with Testnet(3, [SMOLLM, GEMMA, QWEN], tmp_path_factory.mktemp("consensus")) as testnet:
        yield testnet


def test_a_round_ranks_every_experts_answer_and_signs_everything(net: Testnet) -> None:
    with swarm.Client(net.nodes[0].url, timeout=300) as client:
        answer = client.chat(QUESTION, model="swarm", max_tokens=16, temperature=0)
    report = answer.swarm
    assert isinstance(report, swarm.RoundReport) and report.mode == "consensus"
    assert report.degraded is None, report.missed
    by_node = {n.peer_id: n.models[0] for n in net.nodes}
    assert sorted(c.model for c in report.candidates) == sorted(by_node.values())
    assert all(by_node[c.peer_id] == c.model for c in report.candidates)
    winner = next(c for c in report.candidates if c.id == report.candidate)
    assert (winner.model, winner.peer_id) == (report.model, report.peer_id) == (answer.model, winner.peer_id)
    assert winner.bt_score == max(c.bt_score for c in report.candidates)
    # Every judge voted only on pairs of answers that are not its own.
    authors = {c.id: c.peer_id for c in report.candidates}
    assert report.votes and all(v.judge not in (authors[v.a], authors[v.b]) for v in report.votes)
    assert set(report.judges) <= set(by_node) and all(w == 1.0 for w in report.judges.values())
    # Every commitment and ballot is signed by its peer, and checks out for anyone holding it.
    for candidate in report.raw["candidates"]:
        from_wire(candidate["commitment"], kind="commitment", signer=candidate["peer_id"])
    for ballot in report.raw["ballots"]:
        from_wire(ballot, kind="ballot")
    assert set(report.timings_ms) == {"routing", "generation", "commit_reveal", "judging", "aggregation"}


def test_a_round_streams_its_winner_with_the_provenance_first(net: Testnet) -> None:
    with swarm.Client(net.nodes[1].url, timeout=300) as client:
        chunks = list(client.stream_chat(QUESTION, model="swarm", max_tokens=16, temperature=0))
    first = chunks[0].swarm
    assert isinstance(first, swarm.RoundReport)
    winner = next(c for c in first.raw["candidates"] if c["id"] == first.candidate)
    assert winner["model"] == first.model
    assert "".join(c.text for c in chunks).strip()


def test_vote_mode_is_a_majority_over_the_same_experts(net: Testnet) -> None:
    options = swarm.SwarmOptions(mode="vote")
    with swarm.Client(net.nodes[2].url, timeout=300) as client:
        answer = client.chat(QUESTION, model="swarm", max_tokens=16, temperature=0, swarm=options)
    report = answer.swarm
    assert isinstance(report, swarm.RoundReport) and report.mode == "vote"
    assert len(report.candidates) == 3 and not report.votes  # nobody judges a vote
    majority = report.raw["majority"]
    winner = next(c for c in report.raw["candidates"] if c["id"] == report.candidate)
    assert majority is not None and winner["model"] == answer.model


# ---- misbehaving peers, facing this process's own gateway


class Copycat(RoundService):
    """Commits to one answer and reveals another (as if it copied a better one after the fact)."""

    async def commit(self, body: dict[str, Any]) -> Statement:
        digest = commitment_digest(body["round"], body["request"]["model"], "salt", "I don't know.")
        return sign(
            self.identity,
            "commitment",
            {
                "round": body["round"],
                "model": body["request"]["model"],
                "digest": digest,
                "gateway": body[SENDER],
            },
        )

    async def reveal(self, body: dict[str, Any]) -> Statement:
        answer = {"round": body["round"], "model": body["model"], "answer": "Paris", "salt": "salt"}
        return sign(self.identity, "reveal", {**answer, "gateway": body[SENDER]})


class Sleeper(RoundService):
    """A judge that never answers."""

    async def judge(self, body: dict[str, Any]) -> Statement:
        await trio.sleep_forever()
        raise AssertionError


class Forger(RoundService):
    """A judge whose ballot was changed after it was signed."""

    async def judge(self, body: dict[str, Any]) -> Statement:
        votes = [[a, b, "A"] for a, b in body["pairs"]]
        verdicts = {str(cid): "GOOD" for cid in body["check"]}  # every judge checks some answers
        ballot = {"round": body["round"], "gateway": body[SENDER], "votes": votes, "verdicts": verdicts}
        signed = sign(self.identity, "ballot", ballot)
        changed = {cid: "BAD" for cid in verdicts}
        return Statement(signed.kind, signed.signer, {**signed.body, "verdicts": changed}, signed.signature)


class Scribbler(RoundService):
    """A judge whose ballot is signed but says nothing a ballot may say."""

    async def judge(self, body: dict[str, Any]) -> Statement:
        votes = [[a, b, "certainly"] for a, b in body["pairs"]]
        verdicts = {str(cid): "splendid" for cid in body["check"]}
        ballot = {"round": body["round"], "gateway": body[SENDER], "votes": votes, "verdicts": verdicts}
        return sign(self.identity, "ballot", ballot)


@asynccontextmanager
async def peer(
    tmp_path: Path, name: str, kind: type[RoundService], net: Testnet, **options: Any
) -> AsyncIterator[RoundService]:
    """A RoundService of `kind` on a real libp2p transport of its own, connected to every node."""
    identity = Identity.load_or_create(tmp_path / name)
    transport = Transport(identity, port=free_port())
    service = kind(identity, transport, {}, lambda: [], **options)
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run)
        for node in net.nodes:
            await transport.connect(node.multiaddr)
        yield service
        nursery.cancel_scope.cancel()


def request() -> GenerationRequest:
    return GenerationRequest(model="", messages=(Message("user", QUESTION),), max_tokens=12, temperature=0.0)


async def test_a_copied_answer_is_caught_by_its_commitment(net: Testnet, tmp_path: Path) -> None:
    smollm, gemma, qwen = net.nodes
    async with (
        peer(tmp_path, "copycat", Copycat, net) as copycat,
        peer(tmp_path, "gateway", RoundService, net, config=RoundConfig(judge_timeout_s=120)) as gateway,
    ):
        gateway.judges = lambda: [qwen.peer_id]
        answerers = [
            Answerer(SMOLLM, smollm.peer_id),
            Answerer(GEMMA, gemma.peer_id),
            Answerer("copy", copycat.peer_id),
        ]
        result = await gateway.run(request(), QUESTION, answerers, "consensus")
    assert [(m.peer_id, m.phase) for m in result.misses] == [(copycat.peer_id, "reveal")]
    assert result.misses[0].reason.startswith("commitment mismatch")
    assert {c.peer_id for c in result.candidates} == {smollm.peer_id, gemma.peer_id}
    assert result.answer is not None and result.answer.peer_id != copycat.peer_id


async def test_bad_judges_are_left_out_and_do_not_hold_up_the_round(net: Testnet, tmp_path: Path) -> None:
    smollm, gemma, qwen = net.nodes
    config = RoundConfig(judge_timeout_s=60)
    async with (
        peer(tmp_path, "sleeper", Sleeper, net) as sleeper,
        peer(tmp_path, "forger", Forger, net) as forger,
        peer(tmp_path, "scribbler", Scribbler, net) as scribbler,
        peer(tmp_path, "gateway", RoundService, net, config=config) as gateway,
    ):
        # Qwen's node wrote no answer here: it is the one honest judge, among three bad ones.
        gateway.judges = lambda: [qwen.peer_id, sleeper.peer_id, forger.peer_id, scribbler.peer_id]
        answerers = [Answerer(SMOLLM, smollm.peer_id), Answerer(GEMMA, gemma.peer_id)]
        started = trio.current_time()
        result = await gateway.run(request(), QUESTION, answerers, "consensus")
        took = trio.current_time() - started
    missed = {m.peer_id: m.reason for m in result.misses if m.phase == "judge"}
    assert missed[sleeper.peer_id] == "missed the deadline"
    assert "does not verify" in missed[forger.peer_id]
    assert "malformed ballot" in missed[scribbler.peer_id]
    assert set(result.judges) == {qwen.peer_id}
    assert all(v.judge == qwen.peer_id for v in result.votes)
    assert result.answer is not None and len(result.candidates) == 2
    assert took < config.judge_timeout_s + 60  # the deadline, plus the answers' own generation


def test_an_unknown_mode_and_bad_experts_are_refused(net: Testnet) -> None:
    body = {"model": "swarm", "messages": [{"role": "user", "content": QUESTION}]}
    bad = httpx.post(f"{net.nodes[0].url}/v1/chat/completions", json={**body, "swarm": {"mode": "duel"}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "swarm.mode"
