"""The event bus and the series behind the dashboard: bounded, and a slow reader never holds anyone up."""

from __future__ import annotations

import pytest
import trio

from node.events import EventBus, Series, TooManySubscribers


async def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    for i in range(3):
        bus.publish("tick", {"i": i})
    for subscription in (first, second):
        got = [await subscription.__anext__() for _ in range(3)]
        assert [(e.seq, e.kind, e.data["i"]) for e in got] == [(1, "tick", 0), (2, "tick", 1), (3, "tick", 2)]


async def test_a_slow_reader_is_dropped_and_told_why_while_the_publisher_never_waits() -> None:
    bus = EventBus(buffer=4, keep=4)
    slow, fast = bus.subscribe(), bus.subscribe()
    seen = []

    async def read_fast() -> None:
        async for event in fast:
            seen.append(event.seq)
            if event.seq == 10:
                return

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read_fast)
        await trio.sleep(0)
        with trio.fail_after(1):  # publishing is synchronous: it cannot be held up
            for i in range(10):
                bus.publish("tick", {"i": i})
                await trio.sleep(0)  # the fast reader keeps up
    assert seen == list(range(1, 11))
    assert slow.dropped is not None and "fell behind" in slow.dropped
    assert fast.dropped is None
    assert bus.dropped == 1 and bus.subscribers == 1
    # The dropped reader still gets what fitted in its buffer, then its stream ends.
    assert [e.seq async for e in slow] == [1, 2, 3, 4]


async def test_a_reader_may_start_from_a_snapshot_and_miss_nothing_kept() -> None:
    bus = EventBus(buffer=8, keep=3)
    for i in range(5):
        bus.publish("tick", {"i": i})
    snapshot = 3  # the seq a snapshot was taken at
    subscription = bus.subscribe(after=snapshot)
    bus.publish("tick", {"i": 5})
    got = [(await subscription.__anext__()).seq for _ in range(3)]
    assert got == [4, 5, 6]
    # Only `keep` events are kept: a reader from long ago gets those.
    late = bus.subscribe(after=0)
    assert [(await late.__anext__()).seq for _ in range(3)] == [4, 5, 6]


async def test_closing_unsubscribes_and_the_readers_are_bounded() -> None:
    bus = EventBus(max_subscribers=2)
    first = bus.subscribe()
    bus.subscribe()
    with pytest.raises(TooManySubscribers):
        bus.subscribe()
    first.close()
    assert bus.subscribers == 1
    bus.subscribe()
    assert [e async for e in first] == []  # a closed subscription just ends


async def test_closing_the_bus_ends_every_stream_after_what_it_holds() -> None:
    bus = EventBus()
    subscription = bus.subscribe()
    bus.publish("tick", {})
    bus.close()
    assert [e.seq async for e in subscription] == [1] and subscription.dropped is None
    assert bus.subscribers == 0


def test_the_events_kept_must_fit_a_readers_buffer() -> None:
    with pytest.raises(ValueError):
        EventBus(buffer=4, keep=5)


def test_a_series_keeps_its_last_samples_and_first_keys() -> None:
    series = Series(length=3, keys=2)
    for t in range(5):
        series.add({"a": float(t), "b": None, "c": 1.0}, at=float(t))
    assert len(series) == 3
    assert series.to_json() == {"at": [2.0, 3.0, 4.0], "values": {"a": [2.0, 3.0, 4.0], "b": [None] * 3}}


def test_a_series_shows_a_key_missing_from_a_sample_as_none() -> None:
    series = Series(length=10)
    series.add({"peer-a": 10.0}, at=1.0)
    series.add({"peer-a": 11.0, "peer-b": 2.0}, at=2.0)
    assert series.to_json()["values"] == {"peer-a": [10.0, 11.0], "peer-b": [None, 2.0]}
