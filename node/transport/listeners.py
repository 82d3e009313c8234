"""Channels to any number of listeners, which never block the sender: peer events, gossip per topic."""

from __future__ import annotations

from typing import Generic, TypeVar

import trio

LISTENER_BUFFER = 256  # messages or events a slow listener may fall behind before some are dropped

T = TypeVar("T")


class Listeners(Generic[T]):
    def __init__(self) -> None:
        self._channels: list[trio.MemorySendChannel[T]] = []

    def open(self) -> trio.MemoryReceiveChannel[T]:
        """A channel of every later item; close it to stop listening."""
        send, receive = trio.open_memory_channel[T](LISTENER_BUFFER)
        self._channels.append(send)
        return receive

    def send(self, item: T) -> int:
        """Give `item` to every listener; how many were LISTENER_BUFFER items behind and missed it."""
        behind = 0
        for channel in list(self._channels):
            try:
                channel.send_nowait(item)
            except trio.WouldBlock:
                behind += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._channels.remove(channel)
        return behind
