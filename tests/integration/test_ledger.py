"""Reputation and the ledger on a real 3-node testnet: challenges, rounds, a crash, forgeries, a Sybil.

The nodes challenge each other every couple of seconds with easy questions
(tests/support/challenges.jsonl) that the three small models answer right,
so that they earn their say quickly; a Sybil in this process, hosting a model
that knows nothing, is challenged like any peer and never earns one.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import swarm
from consensus import make
from core.identity import Identity
from core.records import ModelInfo, PeerInfo, to_wire
from core.statements import Statement, commitment_digest, sign
from node.ledger import LEDGER_TOPIC
from node.network import ANNOUNCE_TOPIC
from node.ports import free_port
from node.rounds import SENDER, RoundService
from node.transport import Transport
from reputation import Rules
from routing.datasets import challenge_bank
from testnet.testnet import Testnet

SMOLLM, GEMMA, QWEN = "smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"
EASY = Path(__file__).parents[1] / "support" / "challenges.jsonl"
RULES = Rules(challenge_bank=challenge_bank(EASY).digest)  # the testnet's, whose nodes ask EASY's questions
QUESTION = "What is the capital of Italy? Answer in one word."


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Testnet:
    directory = tmp_path_factory.mktemp("ledger")
    with Testnet(3, [SMOLLM, GEMMA, QWEN], directory, challenge_interval=2, challenge_file=EASY) as testnet:
        yield testnet


def ledger(url: str, limit: int = 0) -> dict[str, Any]:
    return httpx.get(f"{url}/v1/ledger?limit={limit}", timeout=30).json()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def same_everywhere(net: Testnet) -> list[dict[str, Any]]:
    """The nodes' ledgers once they hold the same entries (challenges keep coming, so heads move)."""

    def sample() -> list[dict[str, Any]] | None:
        views = [ledger(n.url) for n in net.nodes]
        return (
            views if len({v["head"] for v in views}) == 1 and not any(v["waiting"] for v in views) else None
        )

    return wait_for(sample, 120, "every node holds the same ledger")


def reputations(view: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    return {r["peer_id"]: (round(r["score"], 9), r["eligible"]) for r in view["reputation"]}


def test_peers_earn_their_say_by_passing_challenges(net: Testnet) -> None:
    everyone = {n.peer_id for n in net.nodes}

    def all_eligible() -> bool:
        table = reputations(ledger(net.nodes[0].url))
        return all(table.get(p, (0, False))[1] for p in everyone)

    wait_for(all_eligible, 240, "every node eligible")
    views = same_everywhere(net)
    assert reputations(views[0]) == reputations(views[1]) == reputations(views[2])
    recent = ledger(net.nodes[0].url, limit=50)["recent"]
    assert any(e["type"] == "challenge" and e["right"] > 0 for e in recent)


def test_rounds_are_staked_and_recorded_identically_on_every_node(net: Testnet) -> None:
    wait_for(lambda: not ledger(net.nodes[0].url)["bootstrapping"], 240, "the network out of its bootstrap")
    reports = []
    for node in net.nodes[:2]:
        with swarm.Client(node.url, timeout=300) as client:
            reports.append(client.chat(QUESTION, model="swarm", max_tokens=12, temperature=0).swarm)
    views = same_everywhere(net)
    recorded = {
        (e["gateway"], e["round"])
        for e in ledger(net.nodes[2].url, limit=200)["recent"]
        if e["type"] == "round"
    }
    for node, report in zip(net.nodes, reports, strict=False):
        assert isinstance(report, swarm.RoundReport)
        assert (node.peer_id, report.round_id) in recorded  # written by its gateway, held by every node
        # Votes weigh by reputation now, not all alike.
        assert report.judges and all(w > 0 for w in report.judges.values())
    assert reputations(views[0]) == reputations(views[1]) == reputations(views[2])
    for node in net.nodes:
        # The testnet's own bank, which its rules name.
        command = ["ledger", "verify", "--node", node.url, "--challenge-file", str(EASY)]
        verify = subprocess.run(
            [sys.executable, "-m", "swarm", *command],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert views[0]["head"] in verify.stdout or "ok" in verify.stdout


def test_a_node_killed_mid_way_restarts_and_catches_up(net: Testnet) -> None:
    process = net.processes[2]
    assert process.process is not None
    process.process.kill()  # no chance to close anything
    process.process.wait()
    # The round runs without it once the gateway has dropped it: asked while it is still listed,
    # its commit fails and the gateway waits out the whole commit phase, as it must for a peer
    # that can't prove it failed.
    killed, gateway = net.nodes[2].peer_id, net.nodes[0].url
    wait_for(
        lambda: killed not in {p["peer_id"] for p in httpx.get(f"{gateway}/v1/peers").json()["peers"]},
        60,
        "the gateway drops the killed node",
    )
    with swarm.Client(net.nodes[0].url, timeout=300) as client:
        client.chat(QUESTION, model="swarm", max_tokens=12, temperature=0)
    missed = ledger(net.nodes[0].url)["entries"]
    process.start(180)
    views = same_everywhere(net)
    assert views[2]["entries"] >= missed
    assert reputations(views[2]) == reputations(views[0]) == reputations(views[1])
    shown = subprocess.run(
        [sys.executable, "-m", "swarm", "ledger", "--node", net.nodes[2].url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0 and "head " in shown.stdout
    assert "say per domain: general" in shown.stdout and "GENERAL" in shown.stdout


class KnowNothing(RoundService):
    """A Sybil's model: commits to and reveals the same answer to every question, a wrong one."""

    async def commit(self, body: dict[str, Any]) -> Statement:
        model = body["request"]["model"]
        digest = commitment_digest(body["round"], model, "salt", "I don't know.")
        committed = {"round": body["round"], "model": model, "digest": digest, "gateway": body[SENDER]}
        return sign(self.identity, "commitment", committed)

    async def reveal(self, body: dict[str, Any]) -> Statement:
        answer = {"round": body["round"], "model": body["model"], "answer": "I don't know.", "salt": "salt"}
        return sign(self.identity, "reveal", {**answer, "gateway": body[SENDER]})


async def test_a_sybil_gains_no_say_and_forged_entries_are_rejected(net: Testnet, tmp_path: Path) -> None:
    identity = Identity.load_or_create(tmp_path / "sybil")
    friend = Identity.load_or_create(tmp_path / "friend")
    transport = Transport(identity, port=free_port())
    KnowNothing(identity, transport, {}, lambda: [])
    url = net.nodes[0].url
    real = httpx.get(f"{url}/v1/ledger/entries?limit=1").json()["entries"][0]
    tampered = copy.deepcopy(real)
    tampered["body"]["at"] += 1
    forged = copy.deepcopy(real)
    forged["signer"] = identity.peer_id
    # A valid entry, but from a gateway with no say: vouching for a friend counts for nothing.
    vouch = make(
        identity,
        0,
        "0" * 64,
        time.time(),
        "challenge",
        {"challenge": "vouch", "peer": friend.peer_id, "model": "m", "answers": []},
        RULES.digest(),
    )
    rejected_before = ledger(url)["rejected"]
    model = ModelInfo("know-nothing", "fake", "none", 1024, True, "cpu")
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run)
        for node in net.nodes:
            await transport.connect(node.multiaddr)

        def announcement() -> dict[str, Any]:
            info = PeerInfo(identity.peer_id, tuple(transport.listen_addrs), (model,), {}, "test")
            return to_wire(info)

        def challenged() -> int:
            entries = ledger(url, limit=500)["recent"]
            return sum(e["type"] == "challenge" and e["peer"] == identity.peer_id for e in entries)

        deadline = trio.current_time() + 180
        while challenged() < 2 or ledger(url)["rejected"] < rejected_before + 2:
            assert trio.current_time() < deadline, "the Sybil was never challenged, or forgeries never seen"
            await transport.publish(ANNOUNCE_TOPIC, announcement())
            for wire in (tampered, forged, vouch.to_wire()):
                await transport.publish(LEDGER_TOPIC, wire)
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    views = same_everywhere(net)
    for view in views:
        table = reputations(view)
        assert table.get(identity.peer_id, (0.0, False)) == (0.0, False)
        assert table.get(friend.peer_id, (0.0, False)) == (0.0, False)
    held = ledger(url, limit=1000)["recent"]
    assert any(e["gateway"] == identity.peer_id for e in held)  # its valid entry was taken, and is harmless
