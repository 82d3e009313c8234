"""Hole 9: what a stranger can make a node hold or send without end: a ledger pull answered `more: true`
forever or with endless entries, a diagnostics ping of 10,000 x 4 MiB, an address book and a heartbeat fed
every key anyone announces.

    python -m bench.attack_resource_bounds

Each attack runs for real: the pulls by a node's ledger service and transport from a Sybil
transport on loopback (tests/integration/test_ledger_pull_bounds.py runs the same), the ping against
the node's own ASGI app (the largest `size` and `count` it accepts, found by bisection), the floods
against the transport's own AddressBook and Heartbeat (a host with no connections, a dial that fails
as a Sybil's unreachable keys do), memory measured by tracemalloc.
tests/unit/test_resource_bounds.py floods the same way. `gained_before` is this code run against the
commit before the fixes, `PYTHONPATH` pointing at a worktree of it.
"""

from __future__ import annotations

import os
import tempfile
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import multiaddr
import trio
import trio.testing
from libp2p.peer.id import ID

from bench.attack_ledger_claims import forged_round
from bench.holes import measured
from consensus import GENESIS, Ledger, LedgerEntry, make
from core.identity import Identity
from node.api import NodeState, create_app
from node.ledger import LEDGER_PROTOCOL, LedgerService, round_record
from node.metrics import NodeMetrics
from node.transport import PeerUnavailable, Transport
from node.transport.addresses import AddressBook
from node.transport.heartbeat import Heartbeat
from reputation import Rules

BEFORE = "34e4859"
FLOOD_PEERS = 10_240
PULL_WITHIN_S = 10.0
ATTACKS = {
    "pull_more": ("9a: the ledger pull", "a peer answers every pull with `more: true` and nothing else"),
    "pull_entries": ("9a: the ledger pull", "a peer answers a pull with junk entries without end"),
    "ping": ("9b: the ping endpoint", "POST /v1/peers/{id}/ping with the largest size and count it takes"),
    "book": ("9c: the address book", f"{FLOOD_PEERS} fresh keys announced with an address each"),
    "probes": ("9c: the heartbeat", f"{FLOOD_PEERS} fresh keys in the book, one heartbeat"),
}
GAINED_BEFORE = {
    "pull_more": "the pull still ran after 10 s: 1,129 requests, 0 entries read",
    "pull_entries": "the pull still ran after 10 s: 1 requests, 367,800 entries read",
    "ping": "one call makes the node send 41,943,040,000 bytes (4,194,304 x 10,000)",
    "book": "the book holds 10,240 peers of 10,240 announced, memory +3,708 KiB",
    "probes": "10,240 dials in one beat",
}


class Peerstore:
    """libp2p's peer store as the book sees it: here, nothing more than the book is told directly."""

    def peers_with_addrs(self) -> list[ID]:
        return []

    def addrs(self, peer: ID) -> list[multiaddr.Multiaddr]:
        return []


class Host:
    """A libp2p host connected to nobody, for the heartbeat."""

    def __init__(self) -> None:
        self.peerstore = Peerstore()

    def get_peerstore(self) -> Peerstore:
        return self.peerstore

    def get_connected_peers(self) -> list[ID]:
        return []


def stranger_chain(key: Identity, n: int, at: float) -> list[LedgerEntry]:
    """The first `n` entries of `key`'s chain, a millisecond apart from `at`: rounds it says it ran, each
    signed and linked as any node's. From a key without a say they count for nothing."""
    entries: list[LedgerEntry] = []
    victim, rules = Identity.generate(), Rules().digest()
    for seq in range(n):
        prev = entries[-1].digest if entries else GENESIS
        record = round_record(forged_round(victim))
        entries.append(make(key, seq, prev, at + seq / 1000, "round", record, rules))
    return entries


def fresh_peer_id() -> str:
    return ID(b"\x12\x20" + os.urandom(32)).to_base58()  # a sha256 multihash: what any new key gets


def flood(book: AddressBook, peers: int) -> None:
    """Announce `peers` fresh keys, each with an address of its own."""
    for n in range(peers):
        book.add(fresh_peer_id(), [f"/ip4/10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}/tcp/4001"])


def flooded_memory(book: AddressBook, peers: int) -> int:
    """The bytes the book's process holds more after a flood of `peers` keys."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        flood(book, peers)
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


async def failing_dial(dialed: list[ID], peer: ID) -> None:
    dialed.append(peer)
    raise PeerUnavailable("the Sybil's keys answer nothing")


def unanswered_heartbeat(host: Host, book: AddressBook, dialed: list[ID]) -> Heartbeat:
    """The heartbeat of a node connected to nobody, whose every dial (noted in `dialed`) fails."""
    return Heartbeat(
        host,  # type: ignore[arg-type]
        book,
        lambda peer: failing_dial(dialed, peer),
        interval=2.0,
        timeout=1.0,
        misses=3,
    )


async def dials_in_one_beat(book: AddressBook) -> int:
    dialed: list[ID] = []
    heartbeat = unanswered_heartbeat(Host(), book, dialed)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(heartbeat.run)
        await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    return len(dialed)


async def endless_pull(directory: Path, *, endless_entries: bool, within: float) -> tuple[int, int, bool]:
    """A node's ledger service pulls from a Sybil that answers every pull `more: true` and nothing else, or
    with frames of junk entries without end: how many requests it made, how many entries it read (each
    rejected), and whether the pull returned within `within` seconds."""
    asked = 0

    async def serve(sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        nonlocal asked
        asked += 1
        while endless_entries:
            yield {"entries": [{}] * 200}
        yield {"more": True}

    def transport(name: str) -> Transport:
        return Transport(Identity.load_or_create(directory / name), lock_dir=directory / "locks")

    node, sybil = transport("node"), transport("sybil")
    sybil.handle(LEDGER_PROTOCOL, serve)
    service = LedgerService(node.identity, node, Ledger())
    returned = False
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await nursery.start(sybil.run)
        await node.connect(sybil.listen_addrs[0])
        with trio.move_on_after(within):
            await service.pull(sybil.peer_id)
            returned = True
        nursery.cancel_scope.cancel()
    return asked, service.rejected, returned


async def largest_accepted(c: httpx.AsyncClient, param: str, other: dict[str, int]) -> int:
    """The largest value of `param` the ping endpoint takes (404: it got past its bounds to the lookup)."""
    low, high = 1, 2**40
    while low < high:
        mid = (low + high + 1) // 2
        answer = await c.post("/v1/peers/someone/ping", params={param: mid, **other})
        low, high = (mid, high) if answer.status_code == 404 else (low, mid - 1)
    return low


async def largest_ping() -> tuple[int, int]:
    transport = httpx.ASGITransport(app=create_app(NodeState({}, NodeMetrics())))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
        size = await largest_accepted(c, "size", {"count": 1})
        return size, await largest_accepted(c, "count", {"size": 0})


def pulled(directory: Path, *, endless_entries: bool) -> str:
    asked, taken, returned = trio.run(
        lambda: endless_pull(directory, endless_entries=endless_entries, within=PULL_WITHIN_S)
    )
    ended = "the pull ended" if returned else f"the pull still ran after {PULL_WITHIN_S:g} s"
    return f"{ended}: {asked:,} requests, {taken:,} entries read"


def measure() -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="attack-bounds-") as directory:
        more = pulled(Path(directory) / "more", endless_entries=False)
        entries = pulled(Path(directory) / "entries", endless_entries=True)
    size, count = trio.run(largest_ping)
    book = AddressBook("me", Peerstore())  # type: ignore[arg-type]
    grown = flooded_memory(book, FLOOD_PEERS)
    held = len(book.peers())
    probed = AddressBook("me", Peerstore())  # type: ignore[arg-type]
    flood(probed, FLOOD_PEERS)
    dials = trio.run(dials_in_one_beat, probed, clock=trio.testing.MockClock(autojump_threshold=0))
    return {
        "pull_more": more,
        "pull_entries": entries,
        "ping": f"one call makes the node send {size * count:,} bytes ({size:,} x {count:,})",
        "book": f"the book holds {held:,} peers of {FLOOD_PEERS:,} announced, memory +{grown >> 10:,} KiB",
        "probes": f"{dials:,} dials in one beat",
    }


def rows() -> list[dict[str, str]]:
    return measured(ATTACKS, GAINED_BEFORE, BEFORE, measure())


if __name__ == "__main__":
    for key, value in measure().items():
        print(key, value, sep=": ")
