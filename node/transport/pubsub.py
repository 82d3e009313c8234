"""GossipSub topics of sealed envelopes, each checked before delivery. Publishing is paced per topic
(trap 7 of docs/libp2p.md) and kept well under the size past which GossipSub drops a message unsaid.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
from libp2p.abc import IHost
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID as GOSSIPSUB_V10
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11 as GOSSIPSUB_V11
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from core.envelope import EnvelopeRejected, MessageTooLarge, Opener, seal
from core.identity import Identity

from .listeners import Listeners

log = logging.getLogger("swarm.transport")

PUBLISH_MIN_INTERVAL_S = 0.25  # per topic: well under GossipSub's 10 messages/s spam limit
MAX_PUBLISH_BYTES = 512 * 1024  # GossipSub drops inbound RPCs over 1 MiB without a word

Gossip = tuple[str, dict[str, Any]]  # (sender peer id, body)


class Topics:
    """Our GossipSub router: what we publish, and a channel per subscriber to a topic."""

    def __init__(self, identity: Identity, host: IHost, opener: Opener) -> None:
        self._identity, self._opener = identity, opener
        self._gossipsub = GossipSub(
            protocols=[GOSSIPSUB_V11, GOSSIPSUB_V10],
            degree=6,
            degree_low=4,
            degree_high=12,
            heartbeat_interval=1,
        )
        self._pubsub = Pubsub(host, self._gossipsub)
        self._subscribers: dict[str, Listeners[Gossip]] = {}
        self._next_publish: dict[str, float] = {}

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Pubsub and its router in the background; wait_until_ready() before the first topic."""
        async with background_trio_service(self._pubsub), background_trio_service(self._gossipsub):
            yield

    async def wait_until_ready(self) -> None:
        await self._pubsub.wait_until_ready()

    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        now = trio.current_time()
        slot = max(now, self._next_publish.get(topic, now))
        self._next_publish[topic] = slot + PUBLISH_MIN_INTERVAL_S
        await trio.sleep_until(slot)
        data = seal(self._identity, "publish", body)
        if len(data) > MAX_PUBLISH_BYTES:
            raise MessageTooLarge(
                f"a published message of {len(data)} bytes is over {MAX_PUBLISH_BYTES} bytes"
            )
        await self._pubsub.publish(topic, data)

    def subscribe(self, topic: str, nursery: trio.Nursery) -> trio.MemoryReceiveChannel[Gossip]:
        """A channel of the topic's checked messages; the first subscriber starts the pump in `nursery`."""
        if topic not in self._subscribers:
            self._subscribers[topic] = Listeners[Gossip]()
            self._pubsub.set_topic_validator(topic, self._check, False)
            nursery.start_soon(self._pump, topic)
        return self._subscribers[topic].open()

    def _check(self, forwarder: ID, message: rpc_pb2.Message) -> bool:
        # libp2p has checked its own signature of the origin; ours must name that same origin.
        origin = ID(message.from_id).to_base58()
        try:
            self._opener.open(message.data, expected_sender=origin)
        except EnvelopeRejected as exc:
            log.info("dropped a gossip message from %s (via %s): %s", origin, forwarder, exc)
            return False
        return True

    async def _pump(self, topic: str) -> None:
        subscription = await self._pubsub.subscribe(topic)
        async for message in subscription:
            origin = ID(message.from_id).to_base58()
            if origin == self._identity.peer_id:
                continue
            # Pubsub delivers only what passed _check (the validator runs before delivery).
            item = (origin, json.loads(message.data)["body"])
            if behind := self._subscribers[topic].send(item):
                self._opener.dropped["slow_consumer"] += behind
