"""Hole 9: what a stranger can make a node hold or send without end: a ledger pull answered `more: true`
forever or with endless entries, a diagnostics ping of 10,000 x 4 MiB, an address book and a heartbeat fed
every key anyone announces; entries waiting for a predecessor that never comes, endless entries from a key
without a say, a ledger verified whole at every start, frames sent faster than they are read.

    python -m bench.attack_resource_bounds

Each attack runs for real: the pulls by a node's ledger service and transport from a Sybil
transport on loopback (tests/integration/test_ledger_pull_bounds.py runs the same), the ping against
the node's own ASGI app (the largest `size` and `count` it accepts, found by bisection), the floods
against the transport's own AddressBook and Heartbeat (a host with no connections, a dial that fails
as a Sybil's unreachable keys do), memory measured by tracemalloc.
The ledger's attacks run against a real Ledger (on SQLite where disk or opening is measured), the
frame floods between two real transports on loopback. tests/unit/test_resource_bounds.py,
tests/unit/test_ledger_bounds.py and tests/integration/test_channel_bounds.py flood the same way.
`gained_before` is this code run against the commit before the fixes (BEFORE, LEDGER_BEFORE),
`PYTHONPATH` pointing at a worktree of it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import multiaddr
import trio
import trio.testing
from libp2p.peer.id import ID

from bench.attack_ledger_claims import forged_round, network, rigged_round
from bench.holes import measured
from consensus import GENESIS, Ledger, LedgerEntry, make
from consensus.checkpoint import epoch_before
from consensus.entry import CHECKPOINT_EVERY_S
from core.identity import Identity
from node.api import NodeState, create_app
from node.ledger import LEDGER_PROTOCOL, LedgerService, round_record
from node.metrics import NodeMetrics
from node.transport import PeerUnavailable, Transport, pubsub
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
LEDGER_BEFORE = "1beca4d"
WAIT_FLOOD = 10_240
SAYLESS_FLOOD = 3_000
STARTUP_ROUNDS = 2_000
LEDGER_ATTACKS = {
    "wait": (
        "9d: the ledger's wait",
        f"one key sends {WAIT_FLOOD:,} entries without its first; an honest gateway's gap; 11 minutes on",
    ),
    "sayless": (
        "9e: writers without a say",
        f"a key without a say writes {SAYLESS_FLOOD:,} rounds after the first final checkpoint",
    ),
    "startup": (
        "9f: verification at start",
        f"a node opens its ledger of {STARTUP_ROUNDS:,} rounds, a first time and again",
    ),
    "stream": ("9g: frame channels", "a peer answers with 64 KiB frames as fast as it can, nothing read"),
    "gossip": (
        "9g: frame channels",
        "a peer publishes 2,000 messages of 16 KiB as fast as it can, the subscriber reads none",
    ),
}
# Measured by this module's measure_ledger() run on LEDGER_BEFORE, PYTHONPATH pointing at a worktree of it.
LEDGER_GAINED_BEFORE = {
    "wait": "the wait holds 10,000 of them (7,656 KiB as sent); an honest gap stays open (its entries "
    "refused); 10,000 of them still wait",
    "sayless": "every node keeps 3,000 of them, disk +3,250 KiB",
    "startup": "6.07 s verifying 2,018 entries, then 6.45 s verifying 2,018 (0.9x faster)",
    # The same bounds then: these rows show that they hold.
    "stream": "16 frames (1 MiB) sent ahead, then its writes wait (16 2 s later); memory +1,433 KiB",
    "gossip": "100 reach the node in 12 s (GossipSub's 10 a second), 101 held (at most the subscriber's "
    "buffer), memory +2,422 KiB",
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


class SteppedClock:
    """A clock that ticks a millisecond a reading (entries written one after another stay in order), and
    that a bench moves on by hand."""

    def __init__(self, t: float = 1.7e9) -> None:
        self.t = t

    def __call__(self) -> float:
        self.t += 0.001
        return self.t


def closed_network(path: Path | None = None) -> tuple[Ledger, SteppedClock, list[Identity]]:
    """A network's ledger whose first epoch is final: four peers that earned their say signed it."""
    clock, peers = SteppedClock(), [Identity.generate() for _ in range(4)]
    ledger = network(*peers, ledger=Ledger(path, clock=clock))
    clock.t += CHECKPOINT_EVERY_S
    checkpoint = ledger.checkpoint(epoch_before(clock.t))
    for peer in peers:
        ledger.append(peer, "checkpoint", checkpoint.to_record())
    assert ledger.finals == [checkpoint]
    return ledger, clock, peers


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


FLOOD_PROTOCOL = "/swarm/attack/flood/1.0.0"
FLOOD_FRAME_BYTES = 64 << 10
FLOOD_GOSSIP = 2_000  # messages
FLOOD_GOSSIP_BYTES = 16 << 10  # each


def transport(directory: Path, name: str) -> Transport:
    return Transport(Identity.load_or_create(directory / name), lock_dir=directory / "locks")


async def unread_stream(directory: Path, *, pause: float) -> tuple[int, int, int]:
    """A Sybil answers a node's request with frames of 64 KiB as fast as it can, while the node reads one
    and then none for `pause` s, twice: how many frames the Sybil had sent after each pause (the same,
    if its writes wait for the node to read), and the bytes the process grew over both."""
    sent = 0

    async def serve(sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        nonlocal sent
        while True:
            yield {"junk": "x" * FLOOD_FRAME_BYTES}
            sent += 1

    node, sybil = transport(directory, "node"), transport(directory, "sybil")
    sybil.handle(FLOOD_PROTOCOL, serve)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await nursery.start(sybil.run)
        await node.connect(sybil.listen_addrs[0])
        async with node.stream(sybil.peer_id, FLOOD_PROTOCOL, {}, timeout=4 * pause) as frames:
            await anext(aiter(frames))
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                await trio.sleep(pause)
                first = sent
                await trio.sleep(pause)
                grown = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
        nursery.cancel_scope.cancel()
    return first, sent, grown


async def unread_gossip(directory: Path, *, messages: int, size: int) -> tuple[int, int, int, float]:
    """A Sybil publishes `messages` of `size` bytes as fast as it can (its transport's pacing off) on a
    topic a node subscribes to and never reads: how many reached the node's subscription, how many of
    them it holds, the bytes the process grew, and the seconds from the first to 2 s after the last."""
    node, sybil = transport(directory, "node"), transport(directory, "sybil")
    paced = pubsub.PUBLISH_MIN_INTERVAL_S
    pubsub.PUBLISH_MIN_INTERVAL_S = 0.0
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            await nursery.start(sybil.run)
            unread = node.subscribe("flood")
            await sybil.connect(node.listen_addrs[0])

            def arrived() -> int:
                return unread.statistics().current_buffer_used + node.counters.dropped["slow_consumer"]

            with trio.fail_after(15):  # the mesh forms on GossipSub's heartbeat: publish until one arrives
                while not arrived():
                    await sybil.publish("flood", {"probe": True})
                    await trio.sleep(0.2)
            await trio.sleep(1.0)  # the probes' second of the router's rate limit over
            probes = arrived()
            tracemalloc.start()
            try:
                before, started = tracemalloc.get_traced_memory()[0], trio.current_time()
                for _ in range(messages):
                    await sybil.publish("flood", {"junk": "x" * size})
                await trio.sleep(2.0)
                grown = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
            took = trio.current_time() - started
            reached, held = arrived() - probes, unread.statistics().current_buffer_used
            nursery.cancel_scope.cancel()
    finally:
        pubsub.PUBLISH_MIN_INTERVAL_S = paced
    return reached, held, grown, took


def flooded_wait() -> str:
    clock = SteppedClock()
    ledger = Ledger(clock=clock)
    flood = stranger_chain(Identity.generate(), WAIT_FLOOD + 1, clock.t)
    ledger.add_many(flood[1:], [])
    held = len(ledger.waiting())
    wire = sum(len(json.dumps(e.to_wire())) for e in flood[1:]) // WAIT_FLOOD  # bytes an entry, as sent
    honest = stranger_chain(Identity.generate(), 3, clock.t)
    ledger.add_many([*honest[1:], honest[0]], [])
    closes = "closes" if ledger.heads()[honest[0].gateway] == 3 else "stays open (its entries refused)"
    clock.t += 11 * 60
    ledger.add_many(stranger_chain(Identity.generate(), 2, clock.t)[1:], [])
    return (
        f"the wait holds {held:,} of them ({held * wire >> 10:,} KiB as sent); an honest gap {closes}; "
        f"{sum(gateway == flood[0].gateway for gateway, _ in ledger.waiting()):,} of them still wait"
    )


def sayless_writer(directory: Path) -> str:
    ledger, clock, _ = closed_network(directory / "ledger.db")
    stranger = Identity.generate()
    flood = stranger_chain(stranger, SAYLESS_FLOOD, clock.t)
    size = disk_bytes(directory)
    ledger.add_many(flood, [])
    grown = disk_bytes(directory) - size
    ledger.close()
    held = ledger.heads()[stranger.peer_id]
    return f"every node keeps {held:,} of them, disk +{grown >> 10:,} KiB"


def disk_bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.iterdir() if f.name.startswith("ledger.db"))


def opening(directory: Path) -> str:
    ledger, _, peers = closed_network(directory / "ledger.db")
    victim, friend, judge = peers[:3]
    for n in range(STARTUP_ROUNDS):
        writer = peers[n % 4]
        ledger.append(writer, "round", round_record(rigged_round(victim, friend, judge, writer)))
    ledger.close()
    with sqlite3.connect(directory / "ledger.db") as db:
        db.execute("DROP TABLE IF EXISTS verified")  # as a ledger written before the snapshot was
    times, checked = [], []
    for _ in range(2):
        started = time.perf_counter()
        opened = Ledger(directory / "ledger.db")  # verified and replayed: what a node waits for
        times.append(time.perf_counter() - started)
        checked.append(getattr(opened, "checked_on_load", len(opened)))
        opened.close()
    return (
        f"{times[0]:.2f} s verifying {checked[0]:,} entries, then {times[1]:.2f} s verifying "
        f"{checked[1]:,} ({times[0] / times[1]:.1f}x faster)"
    )


def measure_ledger() -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="attack-ledger-bounds-") as directory:
        root = Path(directory)
        for name in ("sayless", "startup", "stream", "gossip"):
            (root / name).mkdir()
        sayless = sayless_writer(root / "sayless")
        startup = opening(root / "startup")
        first, then, grown = trio.run(lambda: unread_stream(root / "stream", pause=2.0))
        reached, held, gossip_grown, took = trio.run(
            lambda: unread_gossip(root / "gossip", messages=FLOOD_GOSSIP, size=FLOOD_GOSSIP_BYTES)
        )
    return {
        "wait": flooded_wait(),
        "sayless": sayless,
        "startup": startup,
        "stream": f"{first:,} frames ({first * FLOOD_FRAME_BYTES >> 20} MiB) sent ahead, then its writes "
        f"wait ({then:,} 2 s later); memory +{grown >> 10:,} KiB",
        "gossip": f"{reached:,} reach the node in {took:.0f} s (GossipSub's 10 a second), {held:,} held "
        f"(at most the subscriber's buffer), memory +{gossip_grown >> 10:,} KiB",
    }


def rows() -> list[dict[str, str]]:
    return [
        *measured(ATTACKS, GAINED_BEFORE, BEFORE, measure()),
        *measured(LEDGER_ATTACKS, LEDGER_GAINED_BEFORE, LEDGER_BEFORE, measure_ledger()),
    ]


if __name__ == "__main__":
    for key, value in {**measure(), **measure_ledger()}.items():
        print(key, value, sep=": ")
