"""The routing table on real nodes, against hostile peers and clients: holes 6 and 8.

A Sybil in this process offers the testnet a table dated in the year 3000; a
node's disk fills up while it takes up a table; a client with no key installs
a table on a node anyone can reach. The attacks are bench/attack_routing_table_api.py's.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from bench.attack_routing_table_api import TINY_DISK, YEAR_3000, offer, table
from core.identity import Identity
from node.ports import free_port
from node.transport import Transport
from testnet.process import NodeProcess
from testnet.testnet import Testnet
from tests.support.observe import wait_for

SMOLLM = "smollm2-135m-instruct"
JSON_BODY = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Testnet]:
    with Testnet(2, [SMOLLM], tmp_path_factory.mktemp("tables")) as testnet:
        yield testnet


def held(url: str, key: str | None = None) -> str | None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{url}/v1/routing/table", headers=headers, timeout=10).json().get("version")


async def test_a_table_dated_in_the_year_3000_is_adopted_by_no_node(net: Testnet, tmp_path: Path) -> None:
    identity = Identity.load_or_create(tmp_path / "sybil")
    transport = Transport(identity, port=free_port())
    evil = table(YEAR_3000)
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run)
        for node in net.nodes:
            await transport.connect(node.multiaddr)
        for _ in range(20):  # ten seconds of offers, asked for directly and gossiped
            await offer(transport, identity, evil)
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert all(held(node.url) != evil.version for node in net.nodes)


def test_a_full_disk_leaves_the_node_running_and_saying_why(net: Testnet) -> None:
    """Node 1's routing directory is a tmpfs smaller than the table node 0 passes on: ENOSPC for real."""
    victim, gateway = net.nodes[1], net.nodes[0]
    routing = Path(victim.data_dir) / "routing"
    routing.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TINY_DISK}", "tmpfs", str(routing)], check=True)
    try:
        big = table(time.time(), clusters=64)
        put = httpx.put(f"{gateway.url}/v1/routing/table", content=big.to_json(), headers=JSON_BODY)
        assert put.status_code == 200 and put.json()["adopted"]

        def reported() -> str | None:
            return httpx.get(f"{victim.url}/v1/peers", timeout=10).json().get("routing_table_error")

        wait_for(lambda: bool(reported()), timeout=30, what="node 1 to say it could not store the table")
        assert "No space left on device" in (reported() or "")
        assert httpx.get(f"{victim.url}/health", timeout=10).json()["status"] == "ok"
        assert held(victim.url) != big.version  # not used: it could not be written first
    finally:
        subprocess.run(["umount", str(routing)], check=True)


def test_a_node_anyone_can_reach_takes_a_table_only_with_its_key(net: Testnet, tmp_path: Path) -> None:
    key = "s3cret"
    exposed_args = ("--model", SMOLLM, "--context-length", "1024", "--host", "0.0.0.0")
    bootstrap = ("--bootstrap", net.nodes[0].multiaddr, "--announce-interval", "2")
    unkeyed = NodeProcess(tmp_path / "unkeyed", *exposed_args).start(180)
    try:
        refused = httpx.put(
            f"{unkeyed.url}/v1/routing/table", content=table(time.time()).to_json(), headers=JSON_BODY
        )
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "api_key_required"
    finally:
        unkeyed.stop()
    keyed = NodeProcess(tmp_path / "keyed", *exposed_args, *bootstrap, "--api-key", key).start(180)
    try:
        installed = table(time.time(), seed=7)
        url = f"{keyed.url}/v1/routing/table"
        assert httpx.put(url, content=installed.to_json(), headers=JSON_BODY).status_code == 401
        answer = httpx.put(
            url, content=installed.to_json(), headers={**JSON_BODY, "Authorization": f"Bearer {key}"}
        )
        assert answer.status_code == 200 and answer.json()["adopted"], answer.text
        wait_for(
            lambda: all(held(node.url) == installed.version for node in net.nodes),
            timeout=60,
            what="the keyed node's table to reach the testnet",
        )
    finally:
        keyed.stop()
