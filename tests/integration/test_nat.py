"""Nodes behind real NATs (tests/integration/netns.py): a relay on the public segment, three homes behind
three NATs that drop new inbound connections, NAT 3 with `masquerade fully-random`. Every node is a real
`swarm node start` process with a real model; every request goes through a node's HTTP API inside its
namespace. What is shown: nothing reaches a home from outside; each home finds itself private by a real
dial back and is reached through the relay; DCUtR punches a hole through the port-keeping NATs, and the
punched connection carries requests once the relay is gone; through the port-randomising NAT punching
fails and the relay keeps carrying requests; a consensus round over three experts behind three NATs.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from testnet.netns import RELAY_IP, NsNode, Topology, skip_reason, wait_for

NOT_HERE = skip_reason()
pytestmark = pytest.mark.skipif(NOT_HERE is not None, reason=str(NOT_HERE))

SMOLLM, GEMMA, QWEN = "smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"
QUESTION = "What is the capital of France? Answer in one word."
START_TIMEOUT_S = 300.0


@dataclass
class Net:
    topology: Topology
    relay: NsNode
    a: NsNode  # behind NAT 1 (keeps ports), hosts GEMMA
    b: NsNode  # behind NAT 2 (keeps ports), hosts QWEN
    c: NsNode  # behind NAT 3 (fully-random), hosts SMOLLM


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    root = tmp_path_factory.mktemp("nat")
    with Topology(3, fully_random=frozenset({3})) as topology:
        # The relay hosts no model of the experts': an upstream that isn't there, never asked.
        relay = NsNode(
            topology, topology.pub, RELAY_IP, root / "relay", "--relay",
            "--backend", "openai", "--url", "http://127.0.0.1:9/v1", "--model", "relay-only",
        )  # fmt: skip
        nodes = [relay]
        try:
            relay.launch().wait_ready(START_TIMEOUT_S)
            homes = [
                NsNode(topology, topology.home(i), topology.home_ip(i), root / f"home{i}", "--model", model,
                       "--bootstrap", relay.multiaddr)
                for i, model in ((1, GEMMA), (2, QWEN), (3, SMOLLM))
            ]  # fmt: skip
            nodes += homes
            for home in homes:
                home.launch()
            for home in homes:
                home.wait_ready(START_TIMEOUT_S)
            yield Net(topology, relay, *homes)
        finally:
            for node in nodes:
                node.stop()


def _chat(node: NsNode, model: str, *, stream: bool = False) -> str:
    body = {"model": model, "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8}
    for _ in range(3):  # a starved machine can drop a peer for a heartbeat; it is back the next one
        status, text = node.post("/v1/chat/completions", {**body, "temperature": 0, "stream": stream})
        if status == 200:
            break
        time.sleep(3)
    assert status == 200, text
    if stream:
        assert text.rstrip().endswith("data: [DONE]"), text
        chunks = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    return json.loads(text)["choices"][0]["message"]["content"]


def _sees(node: NsNode, other: NsNode, model: str) -> bool:
    entry = node.peer(other.peer_id)
    return entry is not None and model in [m["name"] for m in entry["models"]]


def _path(node: NsNode, other: NsNode) -> tuple[str | None, str | None]:
    entry = node.peer(other.peer_id) or {}
    return entry.get("path"), entry.get("path_via")


def test_nothing_from_outside_reaches_a_home_directly(net: Net) -> None:
    topology = net.topology
    assert topology.tcp_connects(topology.home(2), RELAY_IP, net.relay.p2p_port)  # the control: out works
    assert not topology.tcp_connects(topology.home(2), topology.public_ip(1), net.a.p2p_port)
    assert not topology.tcp_connects(topology.home(2), topology.home_ip(1), net.a.p2p_port)
    assert not topology.tcp_connects(topology.pub, topology.public_ip(1), net.a.p2p_port)


def test_homes_find_themselves_behind_nat_and_take_a_relay(net: Net) -> None:
    for home in (net.a, net.b, net.c):
        reach = wait_for(
            lambda h=home: (r := h.get("/health")["reachability"])["relays"] and r,
            60,
            f"a reservation for {home.ns}",
        )
        assert reach["status"] == "private" and reach["relays"] == [net.relay.peer_id]
        assert reach["advice"].startswith(
            f"behind NAT: reachable through relay {net.relay.peer_id}; open port"
        )
        own = home.get("/v1/peers")["self"]["addrs"]
        assert (
            f"/ip4/{RELAY_IP}/tcp/{net.relay.p2p_port}/p2p/{net.relay.peer_id}/p2p-circuit/p2p/{home.peer_id}"
            in own
        )
        assert f"behind NAT: reachable through relay {net.relay.peer_id}" in home.process.log()
    relay = net.relay.get("/health")["reachability"]
    assert relay["status"] == "public" and relay["relay_service"] and not relay["relays"]
    assert "swarm_relay_reservations 3.0" in net.relay.get("/metrics")


def test_through_a_port_randomising_nat_requests_go_by_the_relay(net: Net) -> None:
    wait_for(lambda: _sees(net.b, net.c, SMOLLM), 90, "B seeing C's model")
    assert _chat(net.b, SMOLLM).strip()
    assert _chat(net.b, SMOLLM, stream=True).strip()
    # DCUtR has had its tries (it retries every 2 s): C's NAT gives every connection a new port.
    path, via = wait_for(lambda: _path(net.b, net.c)[0] and _path(net.b, net.c), 30, "a path from B to C")
    assert (path, via) == ("relayed", net.relay.peer_id)
    assert "swarm_relay_circuits" in net.relay.get("/metrics")


def test_a_hole_is_punched_through_port_keeping_nats(net: Net) -> None:
    wait_for(lambda: _sees(net.b, net.a, GEMMA), 90, "B seeing A's model")
    assert _chat(net.b, GEMMA).strip()
    path = wait_for(lambda: _path(net.b, net.a)[0] == "direct" and _path(net.b, net.a), 120, "a direct path")
    assert path == ("direct", f"{net.topology.public_ip(1)}:{net.a.p2p_port}")  # A's NAT, A's own port


def test_the_traffic_really_crossed_the_nats(net: Net) -> None:
    for i in (1, 2, 3):
        counts = net.topology.counters(i)
        assert counts["masqueraded"] > 0 and counts["forwarded_out"] > 0 and counts["returned"] > 100, counts
        assert counts["dropped_input"] > 0, (
            counts
        )  # the dials from outside, the negative control's among them


def test_a_round_over_three_experts_behind_three_nats_completes(net: Net) -> None:
    for home in (net.b, net.c):
        wait_for(
            lambda h=home: _sees(net.a, h, h.process.args[h.process.args.index("--model") + 1]),
            90,
            "A's peers",
        )
    status, text = net.a.post(  # three models answer and judge each other on 2 cores: minutes
        "/v1/chat/completions",
        {
            "model": "swarm",
            "messages": [{"role": "user", "content": QUESTION}],
            "max_tokens": 8,
            "temperature": 0,
            "swarm": {"experts": 4},  # the relay's model too, which fails: the three at home must answer
        },
        timeout=900,
    )
    assert status == 200, text
    report = json.loads(text)["swarm"]
    assert report["mode"] == "consensus"
    experts = {c["peer_id"] for c in report["candidates"]}
    homes = {net.a.peer_id, net.b.peer_id, net.c.peer_id}
    # The relay's model is asked too and fails. An answerer may then refuse to reveal before the commit
    # deadline, as the round rules want every answerer's commitment shown (node/rounds.py), so one home can
    # be left out: of two runs here, one had all three, one two. At least two must have answered.
    assert experts <= homes and len(experts) >= 2, (report.get("missed"), report["degraded"])
    assert net.relay.peer_id in [m["peer_id"] for m in report["missed"] if m["phase"] == "commit"]
    winner = report["answered_by"]
    assert winner["candidate"] in {c["id"] for c in report["candidates"]}
    assert winner["peer_id"] in experts


def test_with_the_relay_gone_the_punched_connection_still_serves(net: Net) -> None:
    wait_for(lambda: _path(net.b, net.a)[0] == "direct", 120, "a direct path from B to A")
    net.relay.stop()
    assert _chat(net.b, GEMMA).strip()
    assert _chat(net.b, GEMMA, stream=True).strip()
    assert _path(net.b, net.a)[0] == "direct"


def test_the_topology_is_gone_after_the_tests() -> None:
    with Topology(1, prefix="swgone") as topology:
        made = list(topology.made)
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert made and not any(name in names for name in made)
