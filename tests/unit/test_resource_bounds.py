"""Hole 9: what a stranger can make a node hold or send is bounded (the diagnostics ping, the address book,
the heartbeat's health map), each flooded here as bench/attack_resource_bounds.py does, and its size and
memory measured."""

from __future__ import annotations

import httpx
import trio
from libp2p.peer.id import ID

from bench.attack_resource_bounds import (
    Host,
    Peerstore,
    flood,
    flooded_memory,
    fresh_peer_id,
    unanswered_heartbeat,
)
from node.api import NodeState, create_app
from node.api.admin import PING_MAX_COUNT, PING_MAX_SIZE
from node.metrics import NodeMetrics
from node.transport.addresses import MAX_PEERS, AddressBook
from node.transport.heartbeat import FORGET_AFTER_S, PROBES_PER_BEAT


def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(NodeState({}, NodeMetrics())))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000")


async def test_a_ping_of_ten_thousand_four_mib_messages_is_refused_before_it_reaches_a_peer() -> None:
    async with client() as c:
        flood = await c.post("/v1/peers/someone/ping", params={"size": 4 << 20, "count": 10_000})
        too_many = await c.post("/v1/peers/someone/ping", params={"size": 0, "count": PING_MAX_COUNT + 1})
        too_big = await c.post("/v1/peers/someone/ping", params={"size": PING_MAX_SIZE + 1, "count": 1})
        most = await c.post("/v1/peers/someone/ping", params={"size": PING_MAX_SIZE, "count": PING_MAX_COUNT})
    for refused in (flood, too_many, too_big):
        assert refused.status_code == 400, refused.text
    # The largest allowed gets as far as looking the peer up (404: this node has no network).
    assert most.status_code == 404, most.text


def test_a_flood_of_announced_keys_keeps_the_address_book_at_its_cap_and_memory_flat() -> None:
    kept = fresh_peer_id()
    book = AddressBook("me", Peerstore(), kept=[kept])  # type: ignore[arg-type]
    book.add(kept, ["/ip4/10.0.0.1/tcp/4001"])
    honest = fresh_peer_id()
    book.add(honest, ["/ip4/10.0.0.2/tcp/4001"])
    flood(book, MAX_PEERS)  # the book full: what one more flood grows, if anything, is its leak
    grown = flooded_memory(book, 10 * MAX_PEERS)
    assert len(book.peers()) == MAX_PEERS
    assert kept in book.peers() and honest not in book.peers()  # the bootstrap peer stays
    assert grown < 256 << 10, f"{grown} bytes more after 10 x {MAX_PEERS} more peers"


async def test_a_flood_of_peers_costs_a_bounded_number_of_probes_a_beat_and_silent_ones_are_forgotten(
    autojump_clock: trio.abc.Clock,
) -> None:
    host = Host()
    book = AddressBook("me", host.peerstore)  # type: ignore[arg-type]
    flood(book, 4 * MAX_PEERS)
    dialed: list[ID] = []
    heartbeat = unanswered_heartbeat(host, book, dialed)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeat.run)
        await trio.sleep(0.5)  # one beat
        assert len(dialed) <= PROBES_PER_BEAT
        assert len(heartbeat._health) <= MAX_PEERS
        await trio.sleep(FORGET_AFTER_S + 4.0)
        assert book.peers() == [] and heartbeat._health == {}
        nursery.cancel_scope.cancel()
