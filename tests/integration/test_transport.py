"""The network layer on real libp2p hosts over loopback TCP, in this process and as killed or frozen peers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import multiaddr
import pytest
import trio
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from core.envelope import MAX_MESSAGE_BYTES, MessageTooLarge, Opener, seal
from core.identity import Identity
from node.ports import free_port
from node.transport import (
    MAX_ADDRS_PER_PEER,
    PUBLISH_MIN_INTERVAL_S,
    FrameReader,
    PeerEvent,
    PeerUnavailable,
    RemoteError,
    RequestTimeout,
    Transport,
    TransportStartError,
    write_frame,
)
from tests.support.misbehaving import raw_host
from tests.support.transport_peer import COUNT, ECHO, count, echo

REPO = Path(__file__).resolve().parents[2]
BOOM = "/test/boom/1.0.0"
LOOPBACK = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")


async def boom(sender: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    yield {"first": True}
    raise ValueError(f"no {body['what']} here")


Make = Callable[..., Transport]


@pytest.fixture
def make(tmp_path: Path) -> Make:
    """A Transport factory: a fresh identity per transport, echo/count/boom served."""
    made = 0

    def factory(**options: Any) -> Transport:
        nonlocal made
        made += 1
        transport = Transport(
            Identity.load_or_create(tmp_path / f"t{made}"), lock_dir=tmp_path / "locks", **options
        )
        transport.handle(ECHO, echo)
        transport.handle(COUNT, count)
        transport.handle(BOOM, boom)
        return transport

    return factory


@asynccontextmanager
async def running(*transports: Transport) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        for transport in transports:
            await nursery.start(transport.run)
        yield
        nursery.cancel_scope.cancel()


async def wait_for_state(transport: Transport, peer_id: str, state: str, within: float) -> None:
    with trio.fail_after(within):
        while transport.peer_states().get(peer_id) != state:
            await trio.sleep(0.02)


# ---- request / response between transports in this process


async def test_a_request_gets_its_reply_and_a_stream_gets_every_frame(make: Make) -> None:
    a, b = make(), make()
    async with running(a, b):
        assert b.listen_addrs[0].endswith(f"/p2p/{b.peer_id}")
        assert await a.connect(b.listen_addrs[0]) == b.peer_id
        assert await a.request(b.peer_id, ECHO, {"x": [1, "two"]}, timeout=5) == {"x": [1, "two"]}
        async with a.stream(b.peer_id, COUNT, {"n": 500}, timeout=10) as replies:
            got = [reply["i"] async for reply in replies]
        assert got == list(range(500))
        assert b.counters.requests_served == 2
        assert a.addresses(b.peer_id) == [b.listen_addrs[0].rsplit("/p2p/", 1)[0]]


async def test_64_kb_and_2_mb_messages_arrive_whole(make: Make) -> None:
    a, b = make(), make()
    async with running(a, b):
        await a.connect(b.listen_addrs[0])
        for size in (64 * 1024, 2 * 1024 * 1024):
            payload = os.urandom(size // 2).hex()
            assert (await a.request(b.peer_id, ECHO, {"blob": payload}, timeout=20))["blob"] == payload


async def test_a_message_over_the_limit_is_refused_clearly_on_both_sides(make: Make, tmp_path: Path) -> None:
    a, b = make(), make()
    host = raw_host(Identity.load_or_create(tmp_path / "attacker"))
    async with running(a, b), host.run([LOOPBACK]):
        await a.connect(b.listen_addrs[0])
        # The sender refuses before writing a byte.
        with pytest.raises(MessageTooLarge, match="over the limit"):
            await a.request(b.peer_id, ECHO, {"blob": "x" * MAX_MESSAGE_BYTES}, timeout=20)
        # A receiver told a frame is larger refuses it unread, says why, and carries on.
        target = info_from_p2p_addr(multiaddr.Multiaddr(b.listen_addrs[0]))
        await host.connect(target)
        stream = await host.new_stream(target.peer_id, [TProtocol(ECHO)])
        await stream.write((MAX_MESSAGE_BYTES + 1).to_bytes(4, "big"))
        answer = Opener().open(await FrameReader(stream).read(), expected_sender=b.peer_id)
        assert answer.kind == "error" and "over the limit" in answer.body["message"]
        assert b.counters.dropped == {"oversized": 1}
        assert await a.request(b.peer_id, ECHO, {"still": "serving"}, timeout=5) == {"still": "serving"}


async def test_a_handler_that_raises_gives_remote_error_and_the_transport_keeps_serving(make: Make) -> None:
    a, b = make(), make()
    async with running(a, b):
        await a.connect(b.listen_addrs[0])
        with pytest.raises(RemoteError, match="no cheese here"):
            async with a.stream(b.peer_id, BOOM, {"what": "cheese"}, timeout=5) as replies:
                assert await replies.__anext__() == {"first": True}
                await replies.__anext__()
        # request() returns the first reply, which came before the failure.
        assert await a.request(b.peer_id, BOOM, {"what": "x"}, timeout=5) == {"first": True}
        assert await a.request(b.peer_id, ECHO, {"ok": 1}, timeout=5) == {"ok": 1}
        assert b.counters.requests_failed >= 1


async def test_an_unknown_peer_or_protocol_is_peer_unavailable(make: Make, tmp_path: Path) -> None:
    a, b = make(), make()
    nobody = Identity.load_or_create(tmp_path / "nobody")
    async with running(a, b):
        with pytest.raises(PeerUnavailable, match="no known address"):
            await a.request(nobody.peer_id, ECHO, {}, timeout=5)
        await a.connect(b.listen_addrs[0])
        with pytest.raises(PeerUnavailable, match="protocol not supported"):
            await a.request(b.peer_id, "/test/none/1.0.0", {}, timeout=5)


async def test_tampered_replayed_and_forged_frames_are_dropped_and_counted(
    make: Make, tmp_path: Path
) -> None:
    b = make()
    attacker, victim = (Identity.load_or_create(tmp_path / name) for name in ("attacker", "victim"))
    host = raw_host(attacker)
    async with running(b), host.run([LOOPBACK]):
        target = info_from_p2p_addr(multiaddr.Multiaddr(b.listen_addrs[0]))
        await host.connect(target)
        opener = Opener()

        async def send(frame: bytes) -> tuple[str, dict[str, Any]]:
            stream = await host.new_stream(target.peer_id, [TProtocol(ECHO)])
            await write_frame(stream, frame)
            reader = FrameReader(stream)
            first = opener.open(await reader.read(), expected_sender=b.peer_id)
            await stream.close()
            return first.kind, first.body

        genuine = seal(attacker, "request", {"pay": 1})
        assert await send(genuine) == ("reply", {"pay": 1})
        kind, body = await send(genuine)
        assert kind == "error" and "replayed" in body["message"]
        kind, body = await send(seal(attacker, "request", {"pay": 1}).replace(b'"pay":1', b'"pay":9'))
        assert kind == "error" and "bad_signature" in body["message"]
        kind, body = await send(seal(victim, "request", {"pay": 1}))
        assert kind == "error" and "wrong_sender" in body["message"]
        assert b.counters.dropped == {"replayed": 1, "bad_signature": 1, "wrong_sender": 1}
        assert b.counters.requests_served == 1


# ---- hardening


async def test_a_plaintext_only_host_cannot_connect(make: Make, tmp_path: Path) -> None:
    b = make()
    host = raw_host(Identity.load_or_create(tmp_path / "plain"), plaintext=True)
    async with running(b), host.run([LOOPBACK]):
        target = info_from_p2p_addr(multiaddr.Multiaddr(b.listen_addrs[0]))
        with pytest.raises(Exception) as refused, trio.fail_after(10):  # libp2p raises many kinds
            await host.connect(target)
        assert not isinstance(refused.value, trio.TooSlowError)
        assert host.get_connected_peers() == []
        assert b.peer_states() == {}


async def test_a_second_transport_on_the_same_port_is_refused(make: Make) -> None:
    port = free_port()
    first, second, client = make(port=port), make(port=port), make()
    async with running(first, client):
        with pytest.raises(
            TransportStartError, match=f"p2p port {port} is already used by another swarm node"
        ):
            with trio.fail_after(5):
                await second.run()
        # The first one still has the port to itself.
        await client.connect(f"/ip4/127.0.0.1/tcp/{port}/p2p/{first.peer_id}")
        assert await client.request(first.peer_id, ECHO, {"first": 1}, timeout=5) == {"first": 1}


# ---- pubsub


async def test_pubsub_reaches_every_subscriber_and_drops_a_bad_signature(make: Make, tmp_path: Path) -> None:
    a, b, c = make(), make(), make()
    async with running(a, b, c):
        await b.connect(a.listen_addrs[0])
        await c.connect(b.listen_addrs[0])  # a line: a's messages reach c only through b
        subscribers = {t.peer_id: t.subscribe("news") for t in (a, b, c)}
        with trio.fail_after(15):
            while True:  # the mesh forms on GossipSub's heartbeat: publish until c hears
                await a.publish("news", {"probe": True})
                with trio.move_on_after(0.5):
                    await subscribers[c.peer_id].receive()
                    break
        await a.publish("news", {"headline": "hello"})
        for t in (b, c):
            with trio.fail_after(5):
                while (message := await subscribers[t.peer_id].receive())[1].get("headline") is None:
                    pass
            assert message == (a.peer_id, {"headline": "hello"})

        # A peer whose envelope doesn't match its body: libp2p's own signature is fine, ours is not.
        attacker = Identity.load_or_create(tmp_path / "attacker")
        host = raw_host(attacker)
        gossip = GossipSub([PROTOCOL_ID_V11], 6, 4, 12, heartbeat_interval=1)
        pubsub = Pubsub(host, gossip)
        async with host.run([LOOPBACK]), background_trio_service(pubsub), background_trio_service(gossip):
            await pubsub.wait_until_ready()
            await host.connect(info_from_p2p_addr(multiaddr.Multiaddr(a.listen_addrs[0])))
            await pubsub.subscribe("news")
            with trio.fail_after(5):  # until a's subscription has reached it
                while ID.from_base58(a.peer_id) not in pubsub.peer_topics.get("news", ()):
                    await trio.sleep(0.02)
            tampered = seal(attacker, "publish", {"headline": "fake"}).replace(b"fake", b"FAKE")
            await pubsub.publish("news", tampered)
            await pubsub.publish("news", seal(attacker, "publish", {"headline": "genuine"}))
            with trio.fail_after(5):
                while (message := await subscribers[a.peer_id].receive())[0] != attacker.peer_id:
                    pass
            assert message == (attacker.peer_id, {"headline": "genuine"})
            assert a.counters.dropped["bad_signature"] == 1


async def test_publishing_is_paced_per_topic(make: Make) -> None:
    a = make()
    async with running(a):
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(a.publish, "busy", {"i": i})
            nursery.start_soon(a.publish, "quiet", {"i": 0})
        elapsed = trio.current_time() - started
    # Five on one topic wait for four intervals; the other topic did not queue behind them.
    assert 4 * PUBLISH_MIN_INTERVAL_S <= elapsed < 5 * PUBLISH_MIN_INTERVAL_S


# ---- discovery


def test_the_address_book_keeps_dialable_addresses_of_the_right_peer(make: Make, tmp_path: Path) -> None:
    a = make()
    peer, other = (Identity.load_or_create(tmp_path / name).peer_id for name in ("peer", "other"))
    a.add_addresses(
        peer,
        [
            f"/ip4/203.0.113.1/tcp/4001/p2p/{peer}",
            "/ip4/203.0.113.2/tcp/4001",
            f"/ip4/203.0.113.3/tcp/4001/p2p/{other}",  # names another peer
            "/ip4/203.0.113.4/udp/4001/quic-v1",  # not dialed here
            "not an address",
            "/ip4/203.0.113.1/tcp/4001",  # again: moves to the end
        ],
    )
    assert a.addresses(peer) == ["/ip4/203.0.113.2/tcp/4001", "/ip4/203.0.113.1/tcp/4001"]
    a.add_addresses(peer, [f"/ip4/198.51.100.{i}/tcp/4001" for i in range(20)])
    assert len(a.addresses(peer)) == MAX_ADDRS_PER_PEER
    assert a.addresses(peer)[-1] == "/ip4/198.51.100.19/tcp/4001"
    a.add_addresses(a.peer_id, ["/ip4/203.0.113.9/tcp/1"])
    assert a.addresses(a.peer_id) == []


async def test_a_peer_bootstrapped_to_one_node_finds_another_through_the_dht(make: Make) -> None:
    a, b = make(), make()
    async with running(a, b):
        # b only dials a: a learns b's listen address from identify and puts b in its DHT routing table.
        await b.connect(a.listen_addrs[0])
        await wait_for_state(a, b.peer_id, "up", within=5)
        with trio.fail_after(5):
            while not a.addresses(b.peer_id):
                await trio.sleep(0.02)
        c = make(bootstrap=a.listen_addrs)
        async with running(c):
            assert await c.request(b.peer_id, ECHO, {"found": True}, timeout=10) == {"found": True}
            assert c.addresses(b.peer_id) == [b.listen_addrs[0].rsplit("/p2p/", 1)[0]]


async def test_an_unreachable_bootstrap_peer_is_retried_and_logged(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    a = make()
    port = free_port()
    c = make(bootstrap=[f"/ip4/127.0.0.1/tcp/{port}/p2p/{a.peer_id}"])

    def failures() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("bootstrap peer")]

    async with running(c):
        with trio.fail_after(5):
            while len(failures()) < 2:
                await trio.sleep(0.05)
    assert f"/tcp/{port}/p2p/{a.peer_id} failed" in failures()[0]
    assert "Connection refused" in failures()[0] and "retrying in 0.5 s" in failures()[0]
    assert "retrying in 1.0 s" in failures()[1]
    with pytest.raises(TransportStartError, match="not a multiaddr ending in /p2p"):
        make(bootstrap=["/ip4/127.0.0.1/tcp/1"])


# ---- a peer in another process: killed, frozen, restarted


@asynccontextmanager
async def peer_process(data_dir: Path, port: int) -> AsyncIterator[tuple[subprocess.Popen[bytes], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.transport_peer", str(data_dir), str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(30):
            line = await trio.to_thread.run_sync(process.stdout.readline, abandon_on_cancel=True)
        assert line.startswith(b"ready "), line
        yield process, line.split()[1].decode()
    finally:
        process.kill()
        process.wait()


async def test_a_peer_killed_mid_stream_is_unavailable_at_once(make: Make, tmp_path: Path) -> None:
    a = make()
    async with running(a), peer_process(tmp_path / "peer", free_port()) as (process, address):
        peer = await a.connect(address)
        with pytest.raises(PeerUnavailable, match="went away"):
            async with a.stream(peer, COUNT, {"n": 1000, "delay": 0.01}, timeout=30) as replies:
                async for reply in replies:
                    if reply["i"] == 5:
                        process.send_signal(signal.SIGKILL)
                        killed = time.monotonic()
        assert time.monotonic() - killed < 2.0


async def test_a_frozen_peer_times_out_at_the_deadline_and_is_marked_down(make: Make, tmp_path: Path) -> None:
    interval, timeout, misses = 0.3, 0.3, 3
    a = make(heartbeat_interval=interval, heartbeat_timeout=timeout, heartbeat_misses=misses)
    events = a.peer_events()
    async with running(a), peer_process(tmp_path / "peer", free_port()) as (process, address):
        peer = await a.connect(address)
        assert await events.receive() == PeerEvent(peer, "up")
        process.send_signal(signal.SIGSTOP)
        frozen = trio.current_time()
        started = time.monotonic()
        with pytest.raises(RequestTimeout, match="did not finish within 1 s"):
            await a.request(peer, ECHO, {}, timeout=1.0)
        assert 0.95 < time.monotonic() - started < 1.5
        with trio.fail_after(misses * interval + timeout + 1.0):
            assert await events.receive() == PeerEvent(peer, "down")
        down_after = trio.current_time() - frozen
        assert a.peer_states()[peer] == "down"
        process.send_signal(signal.SIGCONT)
        with trio.fail_after(5):
            assert await events.receive() == PeerEvent(peer, "up")
        assert await a.request(peer, ECHO, {"back": 1}, timeout=5) == {"back": 1}
    assert down_after < misses * interval + timeout + 1.0


async def test_a_restarted_peer_is_reachable_again_at_once(make: Make, tmp_path: Path) -> None:
    a = make(heartbeat_interval=0.2, heartbeat_timeout=0.2)
    port = free_port()
    async with running(a):
        async with peer_process(tmp_path / "peer", port) as (_, address):
            peer = await a.connect(address)
            assert await a.request(peer, ECHO, {"n": 1}, timeout=5) == {"n": 1}
        # Once its old connection is gone a dial fails, and libp2p won't dial it again for 60 s (trap 4).
        with trio.fail_after(5):
            while True:
                with pytest.raises(PeerUnavailable) as failure:
                    await a.request(peer, ECHO, {"n": 2}, timeout=5)
                if "can't connect" in str(failure.value):
                    break
                await trio.sleep(0.02)
        async with peer_process(tmp_path / "peer", port) as (_, address_again):
            assert address_again == address  # same key, same port
            started = time.monotonic()
            assert await a.request(peer, ECHO, {"n": 3}, timeout=5) == {"n": 3}
            assert time.monotonic() - started < 1.0
        await wait_for_state(a, peer, "down", within=5)
        # Back once more, asked nothing: the heartbeat dials it through the address book.
        async with peer_process(tmp_path / "peer", port):
            await wait_for_state(a, peer, "up", within=10)
