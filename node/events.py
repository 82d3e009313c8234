"""What happens on the node, for whoever watches it: a bounded event bus, and bounded series of samples.

The bus is in memory and never waits. Publishing hands each event to every
subscriber's own bounded buffer; a subscriber that falls so far behind that
its buffer is full is dropped on the spot, with the reason in `dropped`, and
may subscribe again (and read the state afresh). A slow reader costs itself
its stream, never the publisher (a round) any time. The last events are
kept, so a reader that fetched a snapshot can subscribe from the event the
snapshot was taken at and miss nothing in between.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio

BUFFER = 256  # events a subscriber may leave unread before it is dropped
KEEP = 256  # recent events kept for subscribers that start from a snapshot
MAX_SUBSCRIBERS = 32


@dataclass(frozen=True)
class Event:
    seq: int  # 1, 2, ... in publishing order
    kind: str
    at: float  # wall-clock seconds
    data: Mapping[str, Any]


class TooManySubscribers(Exception):
    pass


class Subscription:
    """One reader's events, in order, until it unsubscribes or is dropped (then `dropped` says why)."""

    def __init__(self, bus: EventBus, buffer: int) -> None:
        self._bus = bus
        self._send, self._receive = trio.open_memory_channel[Event](buffer)
        self.dropped: str | None = None

    def _offer(self, event: Event) -> bool:
        """Hand over an event without waiting; False when the buffer is full."""
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            return False
        return True

    def _drop(self, reason: str) -> None:
        self.dropped = reason
        self._send.close()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._bus._unsubscribe(self)
        self._send.close()
        self._receive.close()


class EventBus:
    def __init__(
        self, *, buffer: int = BUFFER, keep: int = KEEP, max_subscribers: int = MAX_SUBSCRIBERS
    ) -> None:
        if not 0 <= keep <= buffer:
            raise ValueError("the events kept must fit in a subscriber's buffer, to be replayed into it")
        self.buffer = buffer
        self.max_subscribers = max_subscribers
        self._recent: deque[Event] = deque(maxlen=keep)
        self._subscribers: set[Subscription] = set()
        self.seq = 0  # the last event published
        self.dropped = 0  # subscribers dropped for falling behind, ever

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, kind: str, data: Mapping[str, Any]) -> Event:
        self.seq += 1
        event = Event(self.seq, kind, time.time(), data)
        self._recent.append(event)
        for subscriber in list(self._subscribers):
            if not subscriber._offer(event):
                self._subscribers.discard(subscriber)
                self.dropped += 1
                subscriber._drop(f"fell behind: {self.buffer} events unread")
        return event

    def subscribe(self, after: int | None = None) -> Subscription:
        """Events from now on; with `after`, first the kept ones published since event `after`."""
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers(f"{self.max_subscribers} readers are watching already")
        subscription = Subscription(self, self.buffer)
        if after is not None:
            for event in self._recent:
                if event.seq > after:
                    subscription._offer(event)  # the kept events fit in the buffer: never refused
        self._subscribers.add(subscription)
        return subscription

    def close(self) -> None:
        """End every subscriber's stream, as its reader takes the events left in its buffer."""
        for subscription in self._subscribers:
            subscription._send.close()
        self._subscribers.clear()

    def _unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)


class Series:
    """Samples over time, each a value per key (a model's queue depth, a peer's score), at most `length`
    samples of at most `keys` keys each: the oldest sample goes first, and a sample keeps its first keys."""

    def __init__(self, length: int, keys: int = 64) -> None:
        self.keys = keys
        self._samples: deque[tuple[float, dict[str, float | None]]] = deque(maxlen=length)

    def __len__(self) -> int:
        return len(self._samples)

    def add(self, values: Mapping[str, float | None], at: float | None = None) -> None:
        kept = dict(list(values.items())[: self.keys])
        self._samples.append((time.time() if at is None else at, kept))

    def to_json(self) -> dict[str, Any]:
        """Columns for a chart: the times, and per key its value at each time (None where it had none)."""
        keys = sorted({key for _, values in self._samples for key in values})
        return {
            "at": [at for at, _ in self._samples],
            "values": {key: [values.get(key) for _, values in self._samples] for key in keys},
        }
