"""A real 3-node testnet: three node processes, three different models, talking over libp2p."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import multiaddr
import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.peerinfo import info_from_p2p_addr

import swarm
from core.envelope import Envelope, Opener, seal
from core.identity import Identity
from node.network import ECHO_PROTOCOL
from node.transport import FrameReader, write_frame
from swarm import errors
from testnet.testnet import Testnet
from tests.support.misbehaving import raw_host
from tests.support.observe import metric, wait_for

MODELS = ["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"]
PEER_DOWN_WITHIN_S = 10.0  # the stated time for a dead node to leave every peer table


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Testnet:
    with Testnet(nodes=3, models=MODELS, directory=tmp_path_factory.mktemp("testnet")) as testnet:
        yield testnet


def test_every_node_lists_every_model_and_where_it_runs(net: Testnet) -> None:
    hosts = {node.models[0]: node.peer_id for node in net.nodes}
    for node in net.nodes:
        with swarm.Client(node.url) as client:
            cards = {card.id: card for card in client.models()}
            view = client.peers()
        assert set(cards) == {*MODELS, "swarm"}  # every model, and the network as one model
        del cards["swarm"]
        for model, card in cards.items():
            assert [h["peer_id"] for h in card.hosts] == [hosts[model]]
            assert card.hosts[0]["local"] == (hosts[model] == node.peer_id)
        assert view.self is not None and view.self.peer_id == node.peer_id
        assert {p.peer_id for p in view.peers} == {n.peer_id for n in net.nodes} - {node.peer_id}


def test_health_shows_the_peer_id(net: Testnet) -> None:
    for node in net.nodes:
        health = httpx.get(f"{node.url}/health").json()
        assert health["node_id"] == node.peer_id and health["peers"] == 2


def test_a_request_for_a_model_elsewhere_is_answered_by_its_host(net: Testnet) -> None:
    gateway, host = net.nodes[0], net.nodes[2]
    model = host.models[0]
    before = metric(host.url, "swarm_completion_tokens_total", model=model)
    with swarm.Client(gateway.url) as client:
        answer = client.chat("What is the capital of France?", model=model, max_tokens=16, temperature=0)
        streamed = list(
            client.stream_chat("What is the capital of France?", model=model, max_tokens=16, temperature=0)
        )
    assert "Paris" in answer.text
    assert "".join(c.text for c in streamed) == answer.text
    assert streamed[-1].usage is not None
    # The host generated both answers; the gateway generated nothing for that model.
    assert (
        metric(host.url, "swarm_completion_tokens_total", model=model)
        == before + 2 * answer.usage.completion_tokens
    )
    assert metric(gateway.url, "swarm_completion_tokens_total", model=model) == 0


def test_remote_errors_keep_their_status(net: Testnet) -> None:
    gateway, model = net.nodes[0], net.nodes[2].models[0]
    body = {"model": model, "messages": [{"role": "user", "content": "word " * 3000}]}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "context_length_exceeded"


def test_ping_measures_round_trips(net: Testnet) -> None:
    a, b = net.nodes[0], net.nodes[1]
    body = httpx.post(
        f"{a.url}/v1/peers/{b.peer_id}/ping", params={"size": 65536, "count": 5}, timeout=30
    ).json()
    assert len(body["rtt_ms"]) == 5 and all(0 < t < 5000 for t in body["rtt_ms"])


def test_a_dead_host_fails_the_request_clearly_then_leaves_and_rejoins(net: Testnet) -> None:
    gateway, victim = net.nodes[0], net.nodes[2]
    model = victim.models[0]
    process = next(p for p in net.processes if p.url == victim.url)
    with swarm.Client(gateway.url, timeout=60) as client:
        chunks = client.stream_chat("Write a long story about a dragon.", model=model, max_tokens=400)
        next(chunks)
        started = time.monotonic()
        os.kill(victim.pid, signal.SIGKILL)
        with pytest.raises(errors.APIError) as broken:
            for _ in chunks:
                pass
        assert time.monotonic() - started < 10
    assert "went away" in broken.value.message
    # It drops out of the other nodes' tables within the stated time.
    for node in net.nodes[:2]:
        wait_for(
            lambda n=node: model not in {c["id"] for c in httpx.get(f"{n.url}/v1/models").json()["data"]},
            PEER_DOWN_WITHIN_S,
            f"{victim.name} to leave {node.name}'s table",
        )
    missing = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert missing.status_code == 404
    # Restarted with the same data dir (same identity) and ports, it rejoins.
    process.process.wait()
    process.start()
    for node in net.nodes[:2]:
        wait_for(
            lambda n=node: model in {c["id"] for c in httpx.get(f"{n.url}/v1/models").json()["data"]},
            30,
            f"{victim.name} to rejoin {node.name}'s table",
        )
    with swarm.Client(gateway.url) as client:
        assert client.chat("Say hi.", model=model, max_tokens=4).text


# ---- a misbehaving peer against a real node


async def test_tampered_and_replayed_messages_are_rejected_and_counted(net: Testnet, tmp_path: Path) -> None:
    node = net.nodes[1]
    attacker = Identity.load_or_create(tmp_path / "attacker")
    host = raw_host(attacker)
    target = info_from_p2p_addr(multiaddr.Multiaddr(node.multiaddr))
    before = {
        r: metric(node.url, "swarm_dropped_messages_total", reason=r) for r in ("replayed", "bad_signature")
    }

    async def send(frame: bytes) -> Envelope:
        stream = await host.new_stream(target.peer_id, [TProtocol(ECHO_PROTOCOL)])
        await write_frame(stream, frame)
        reply = Opener().open(await FrameReader(stream).read(), expected_sender=node.peer_id)
        await stream.close()
        return reply

    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        await host.connect(target)
        genuine = seal(attacker, "request", {"data": "hello"})
        assert (await send(genuine)).body == {"data": "hello"}
        replayed = await send(genuine)
        tampered = await send(seal(attacker, "request", {"data": "hello"}).replace(b"hello", b"HELLO"))
    assert replayed.kind == tampered.kind == "error"
    assert "replayed" in replayed.body["message"] and "bad_signature" in tampered.body["message"]
    assert metric(node.url, "swarm_dropped_messages_total", reason="replayed") == before["replayed"] + 1
    assert (
        metric(node.url, "swarm_dropped_messages_total", reason="bad_signature")
        == before["bad_signature"] + 1
    )
    assert httpx.get(f"{node.url}/health").json()["status"] == "ok"


async def test_a_plaintext_dial_to_a_node_is_refused(net: Testnet, tmp_path: Path) -> None:
    node = net.nodes[1]
    host = raw_host(Identity.load_or_create(tmp_path / "plain"), plaintext=True)
    target = info_from_p2p_addr(multiaddr.Multiaddr(node.multiaddr))
    async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        with pytest.raises(Exception) as refused, trio.fail_after(10):  # libp2p raises many kinds
            await host.connect(target)
        assert not isinstance(refused.value, trio.TooSlowError)
        assert host.get_connected_peers() == []
    peers = {p["peer_id"] for p in httpx.get(f"{node.url}/v1/peers").json()["peers"]}
    assert host.get_id().to_string() not in peers


def test_a_request_is_retried_on_another_host_when_the_first_is_dead(tmp_path: Path) -> None:
    model = "smollm2-135m-instruct"
    with Testnet(nodes=3, models=["gemma3-270m", model, model], directory=tmp_path / "net") as pair:
        gateway = pair.nodes[0]
        card = httpx.get(f"{gateway.url}/v1/models/{model}").json()
        first, second = (next(n for n in pair.nodes if n.peer_id == h["peer_id"]) for h in card["hosts"])
        os.kill(first.pid, signal.SIGKILL)  # still in the gateway's table: its heartbeat hasn't noticed yet
        before = metric(second.url, "swarm_completion_tokens_total", model=model)
        # One HTTP request, no client retries: the gateway itself must move on to the live host.
        body = {"model": model, "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 8}
        response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, timeout=30)
        assert response.status_code == 200, response.text
        tokens = response.json()["usage"]["completion_tokens"]
        assert metric(second.url, "swarm_completion_tokens_total", model=model) == before + tokens


def test_the_sdk_defaults_to_a_model_the_node_hosts_itself(net: Testnet) -> None:
    node = net.nodes[2]  # its model sorts last among the network's three
    with swarm.Client(node.url) as client:
        answer = client.chat("Say hi.", max_tokens=4)
    assert answer.model == node.models[0]
