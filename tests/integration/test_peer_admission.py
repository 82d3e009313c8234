"""Hostile peers against real nodes: reading or spoiling another answerer's commitment, ordering unbounded
judging, more requests at once than a peer's share, past its quota, and using the models without a say.
The attacks are bench/attack_peer_admission.py's, which measures what each gains."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from bench.attack_peer_admission import (
    FLOOD,
    QUOTA,
    concurrency_flood,
    judge_flood,
    open_node,
    read_before_commit,
    say_network,
    second_commit,
    stranger,
    wait_for_say,
)
from core.identity import Identity
from node.ports import free_port
from node.transport import RemoteError, Transport
from node.transport.requests import INBOUND_STREAMS_PER_PEER
from testnet.testnet import TestnetNode

SLOW = "/test/slow/1.0.0"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestnetNode]:
    with open_node(tmp_path_factory.mktemp("admission")) as net:
        yield net.nodes[0]


def refused(node: TestnetNode, reason: str) -> float:
    """swarm_refused_requests_total{reason} on the node."""
    for line in httpx.get(f"{node.url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f'swarm_refused_requests_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_co_answerer_cannot_read_an_answer_before_committing(
    node: TestnetNode, tmp_path: Path
) -> None:
    found = await read_before_commit(node, tmp_path)
    assert found["read"] is None and "nothing to reveal to" in found["snoop_told"]
    assert found["honest"] == "matched"  # the gateway that asked still gets it


async def test_a_second_commit_is_refused_and_the_first_answer_kept(
    node: TestnetNode, tmp_path: Path
) -> None:
    found = await second_commit(node, tmp_path)
    assert not found["accepted"] and "an answerer commits once" in found["spoiler_told"]
    assert found["honest"] == "matched"


async def test_a_judge_request_of_10000_pairs_is_refused_before_any_work(
    node: TestnetNode, tmp_path: Path
) -> None:
    before = refused(node, "size")
    found = await judge_flood(node, tmp_path)
    assert "a round of 2 answers has at most 2 pairs to judge, not 10000" in found["told"]
    assert found["answered_in_s"] < 5 and found["tokens"] == 0
    assert refused(node, "size") == before + 1


async def test_a_peer_past_its_share_is_refused_and_others_are_served(
    node: TestnetNode, tmp_path: Path
) -> None:
    before = refused(node, "concurrency")
    found = await concurrency_flood(node, tmp_path)
    assert found["admitted"] <= 4 and found["admitted"] + found["refused"] == FLOOD
    assert "requests running or queued here, the most it may" in found["refusal"]
    assert found["bystander"] == "served"
    assert refused(node, "concurrency") == before + found["refused"]


async def test_any_peer_is_served_up_to_its_quota(node: TestnetNode, tmp_path: Path) -> None:
    found = await stranger([node], tmp_path, QUOTA + 4)
    assert found["served"] == QUOTA
    assert f"asked {QUOTA} requests in the last minute, the most served" in found["refusal"]


async def test_a_peer_without_a_say_is_refused_under_the_default_policy(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    with say_network(tmp_path_factory.mktemp("say")) as net:
        wait_for_say(net)
        found = await stranger(net.nodes, tmp_path, 5)
        assert found["served"] == 0
        assert "serves peers under --serve-peers say" in found["refusal"]
        assert refused(net.nodes[0], "policy") >= 5


async def test_a_peer_past_its_open_streams_is_refused_before_its_request_is_read(tmp_path: Path) -> None:
    server = Transport(Identity.load_or_create(tmp_path / "server"), port=free_port())
    release = trio.Event()

    async def slow(sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        await release.wait()
        yield {"ok": True}

    server.handle(SLOW, slow)
    flooder = Transport(Identity.load_or_create(tmp_path / "flooder"), port=free_port())
    outcomes: list[str] = []

    async def one() -> None:
        try:
            await flooder.request(server.peer_id, SLOW, {}, timeout=60)
            outcomes.append("served")
        except RemoteError as exc:
            outcomes.append(str(exc))

    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await nursery.start(flooder.run)
        await flooder.connect(server.listen_addrs[0])
        async with trio.open_nursery() as flood:
            for _ in range(INBOUND_STREAMS_PER_PEER + 4):
                flood.start_soon(one)
            with trio.fail_after(30):
                while len(outcomes) < 4:
                    await trio.sleep(0.1)
            release.set()
        nursery.cancel_scope.cancel()
    assert outcomes.count("served") == INBOUND_STREAMS_PER_PEER
    refusals = [o for o in outcomes if o != "served"]
    assert len(refusals) == 4 and all(
        f"has {INBOUND_STREAMS_PER_PEER} streams open here" in r for r in refusals
    )
    assert server.counters.refused["streams"] == 4
