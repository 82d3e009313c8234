"""Hole 9g: a peer that sends frames faster than a node reads them, on real transports over loopback (the
Sybil: a transport in this process), as bench/attack_resource_bounds.py floods them: a reply stream
waits for the reader (the libp2p stream's window), and gossip for a subscriber that does not read is
dropped past its buffer and counted, so the node's memory stays flat."""

from __future__ import annotations

from pathlib import Path

from bench.attack_resource_bounds import FLOOD_FRAME_BYTES, unread_gossip, unread_stream
from node.transport.listeners import LISTENER_BUFFER, Listeners


async def test_a_reply_stream_faster_than_its_reader_waits_for_it(tmp_path: Path) -> None:
    first, then, grown = await unread_stream(tmp_path, pause=2.0)
    assert first == then, f"the sender went on from {first} to {then} frames while nothing was read"
    # Ahead of the reader: what the stream's window lets through (yamux's grows to 16 MiB at most).
    ahead = first * FLOOD_FRAME_BYTES
    assert ahead <= 16 << 20, f"{first} frames of 64 KiB sent ahead of the reader"
    assert grown < ahead + (2 << 20), f"{grown} bytes more while the reader did not read"


async def test_gossip_faster_than_its_subscriber_is_cut_by_the_router_and_the_buffer(tmp_path: Path) -> None:
    messages, size = 2_000, 16 << 10
    reached, held, grown, took = await unread_gossip(tmp_path, messages=messages, size=size)
    # GossipSub takes at most 10 messages a second of a topic from one peer; what passes waits in a
    # subscription of LISTENER_BUFFER at most. Held whole, 2,000 messages of 16 KiB would be 31 MiB.
    assert reached <= 10 * (took + 1), f"{reached} of {messages} messages in {took:.1f} s"
    assert held <= LISTENER_BUFFER
    assert grown < 8 << 20, f"{grown} bytes more after {messages} messages"


def test_a_listener_that_does_not_read_holds_its_buffer_and_the_rest_is_counted_as_missed() -> None:
    listeners = Listeners[int]()
    unread = listeners.open()
    missed = sum(listeners.send(n) for n in range(10 * LISTENER_BUFFER))
    assert unread.statistics().current_buffer_used == LISTENER_BUFFER
    assert missed == 9 * LISTENER_BUFFER
