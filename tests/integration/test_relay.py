"""The relay and the reachability check on real libp2p hosts over loopback: the dial back from a fresh
identity, what a peer asking for one can't make us do, a relay's limit on reservations, a dial through a
circuit. The same across real NATs: test_nat.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from libp2p.relay.circuit_v2.resources import RelayLimits

from core.identity import Identity
from node.ports import free_port
from node.transport import RemoteError, Transport
from node.transport.reachability import DIALBACK_PROTOCOL, MAX_DIALBACK_ADDRS
from tests.support.transport_peer import ECHO, echo

Make = Callable[..., Transport]


@pytest.fixture
def make(tmp_path: Path) -> Make:
    made = 0

    def factory(**options: Any) -> Transport:
        nonlocal made
        made += 1
        transport = Transport(
            Identity.load_or_create(tmp_path / f"t{made}"), lock_dir=tmp_path / "locks", **options
        )
        transport.handle(ECHO, echo)
        return transport

    return factory


@asynccontextmanager
async def running(*transports: Transport) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        for transport in transports:
            await nursery.start(transport.run)
        yield
        nursery.cancel_scope.cancel()


async def _dialback(asker: Transport, peer: str, addrs: list[str]) -> dict[str, str]:
    return (await asker.request(peer, DIALBACK_PROTOCOL, {"addrs": addrs}, timeout=30))["results"]


async def test_a_fresh_identity_dials_back_a_listening_node_and_not_a_closed_port(make: Make) -> None:
    a, b = make(), make()
    async with running(a, b):
        await a.connect(b.listen_addrs[0])
        verdict = await a.check_reachability()
        assert (verdict.status, verdict.confirmed_by) == ("public", (b.peer_id,))
        closed = f"/ip4/127.0.0.1/tcp/{free_port()}"
        assert (await _dialback(a, b.peer_id, [closed]))[closed].startswith("unreachable")


async def test_a_dial_back_is_aimed_only_at_the_askers_own_ip(make: Make) -> None:
    a, b = make(), make()
    async with running(a, b):
        await a.connect(b.listen_addrs[0])
        elsewhere, odd = "/ip4/198.51.100.7/tcp/80", "/dns4/example.org/tcp/80"
        results = await _dialback(a, b.peer_id, [elsewhere, odd])
        assert results[elsewhere].startswith("refused: 198.51.100.7 is not where your connection comes from")
        assert results[odd].startswith("refused:") and "not an /ip4" in results[odd]
        too_many = [f"/ip4/127.0.0.1/tcp/{1000 + i}" for i in range(MAX_DIALBACK_ADDRS + 1)]
        with pytest.raises(RemoteError, match=f"at most {MAX_DIALBACK_ADDRS} addresses"):
            await _dialback(a, b.peer_id, too_many)
        verdict = await a.check_reachability()  # a liar can't make it public: b only says what it reached
        assert verdict.status == "public"


async def test_a_relay_holds_no_more_reservations_than_its_limit(make: Make) -> None:
    limits = RelayLimits(duration=60, data=1 << 20, max_circuit_conns=2, max_reservations=1)
    relay = make(relay=True, relay_limits=limits)
    first, second = make(), make()
    async with running(relay, first, second):
        for client in (first, second):
            await client.connect(relay.listen_addrs[0])
            await trio.sleep(0.3)  # identify tells the client the relay serves HOP
            await client.take_relays()
        assert first.relays == [relay.peer_id] and second.relays == []
        assert relay.relay_served == (1, 0)
        circuit = first.listen_addrs[-1]
        assert circuit == f"{relay.listen_addrs[0]}/p2p-circuit/p2p/{first.peer_id}"


async def test_a_peer_known_only_by_its_circuit_is_reached_through_the_relay(make: Make) -> None:
    relay = make(relay=True)
    target, dialer = make(), make()
    async with running(relay, target, dialer):
        await target.connect(relay.listen_addrs[0])
        await trio.sleep(0.3)
        await target.take_relays()
        circuit = target.listen_addrs[-1]
        assert "/p2p-circuit/" in circuit
        await dialer.connect(relay.listen_addrs[0])
        dialer.add_addresses(target.peer_id, [circuit])
        assert await dialer.request(target.peer_id, ECHO, {"x": 1}, timeout=20) == {"x": 1}
        path = dialer.path(target.peer_id)
        assert path is not None and path.kind in ("relayed", "direct")  # DCUtR may upgrade it at once
