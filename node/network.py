"""What a node does on the peer network: announce itself, keep the peer table, serve and forward requests.

It speaks only through `node.transport` (the one module that touches libp2p).
Announcements go out on GossipSub at a paced interval, and a newly seen peer
is also asked directly (pubsub can drop silently). A request for a model this
node doesn't host is forwarded to the best peer that does; if that peer
fails before anything was streamed, the next one is tried.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import nullcontext
from typing import Any

import trio

from core import __version__
from core.records import (
    Generation,
    GenerationRequest,
    ModelLoad,
    PeerInfo,
    generation_from_wire,
    peer_from_wire,
    request_from_wire,
    to_wire,
)
from core.statements import Statement, from_wire
from routing.table import STATEMENT_KIND, ClusterTable, refusal, vouch, vouches_for

from .admission import Admission
from .engines.base import EngineError, EngineUnavailable, cpu_description
from .failures import SERVED, error_frame, error_from_frame
from .hosting import HostedModel, InvalidRequest, TextStream
from .ledger import LedgerService
from .peers import PeerEntry, PeerTable
from .router import Router, TableNotStored
from .transport import PeerUnavailable, RemoteError, RequestTimeout, Transport

log = logging.getLogger("swarm.network")

ANNOUNCE_TOPIC = "swarm/announce/1"
INFO_PROTOCOL = "/swarm/info/1.0.0"
GENERATE_PROTOCOL = "/swarm/generate/1.0.0"
ECHO_PROTOCOL = "/swarm/echo/1.0.0"
TABLE_PROTOCOL = "/swarm/routing-table/1.0.0"
INFO_TIMEOUT_S = 5.0
TABLE_TIMEOUT_S = 30.0
# A node takes a table from the network at most this often, so a peer with a say that signs a new table
# every second moves the network's routing once in that time, not every second; one that arrives
# sooner is offered again by every announcement of a peer holding it, and taken once the time is up.
# A table it could not store (a full disk) is tried again no sooner either.
TABLE_HOLD_S = 30.0


class _HostFailed(Exception):
    """A host could not finish; `streamed` says whether the client already got part of its answer."""

    def __init__(self, failure: Exception, streamed: bool) -> None:
        super().__init__(str(failure))
        self.streamed = streamed


class RemoteModel:
    """A model hosted by peers, served here by forwarding: the same calls as a HostedModel."""

    def __init__(self, network: NetworkService, name: str, hosts: list[PeerEntry]) -> None:
        self.network = network
        self.name = name
        self.hosts = hosts
        self.state = "ready"

    async def generate(self, request: GenerationRequest) -> Generation:
        stream = await self.stream(request)
        try:
            async for _ in stream:
                pass
        finally:
            await stream.aclose()
        assert stream.result is not None
        return stream.result

    async def stream(self, request: GenerationRequest) -> TextStream:
        return await TextStream.start(self.network.nursery, self._produce, request)

    async def _produce(
        self, request: GenerationRequest, send: trio.MemorySendChannel, cancel: threading.Event
    ) -> None:
        last_failure: Exception | None = None
        async with send:
            for host in self.hosts:
                peer = host.info.peer_id
                try:
                    outcome = await self._from_host(peer, request, send, cancel)
                except _HostFailed as failure:
                    if failure.streamed:  # part of an answer can't be retried elsewhere
                        await send.send(EngineUnavailable(f"peer {peer} went away mid-answer: {failure}"))
                        return
                    log.info(
                        "peer %s could not serve %s (%s); trying the next host", peer, self.name, failure
                    )
                    last_failure = failure
                    continue
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return  # the client is gone
                if outcome is not None:
                    await send.send(outcome)
                return
            await send.send(EngineUnavailable(f"no peer could serve model {self.name!r}: {last_failure}"))

    async def _from_host(
        self, peer: str, request: GenerationRequest, send: trio.MemorySendChannel, cancel: threading.Event
    ) -> object | None:
        """Relay one host's frames; returns the final outcome, or None if the client left."""
        streamed = False
        body = {"request": to_wire(request)}
        try:
            async with self.network.transport.stream(
                peer, GENERATE_PROTOCOL, body, timeout=self.network.forward_timeout
            ) as frames:
                async for frame in frames:
                    if cancel.is_set():
                        return None
                    if "text" in frame:
                        streamed = True
                        send.send_nowait(frame["text"])
                    elif "done" in frame:
                        return generation_from_wire(frame["done"])
                    elif "error" in frame:
                        return error_from_frame(frame["error"], peer)
        except RemoteError as error:
            return EngineError(f"peer {peer}: {error}")
        except (PeerUnavailable, RequestTimeout) as failure:
            raise _HostFailed(failure, streamed) from failure
        return EngineUnavailable(f"peer {peer} ended the answer without a result")


class NetworkService:
    def __init__(
        self,
        transport: Transport,
        local: dict[str, HostedModel],
        *,
        http_url: str | None = None,
        announce_interval: float = 5.0,
        peer_ttl: float | None = None,
        forward_timeout: float = 600.0,
        router: Router | None = None,
        ledger: LedgerService | None = None,
        admission: Admission | None = None,
    ) -> None:
        self.transport = transport
        self.admission = admission  # which peers this node's models serve, and how much; None: all, unbounded
        self.local = local
        self.router = router
        self.ledger = ledger
        self._pulling: set[str] = set()  # table versions being fetched, so one announcement round pulls once
        self.http_url = http_url
        self.announce_interval = announce_interval
        self.forward_timeout = forward_timeout
        self.table = PeerTable(transport.peer_id, ttl=peer_ttl or 3 * announce_interval)
        self._nursery: trio.Nursery | None = None
        transport.handle(INFO_PROTOCOL, self._serve_info)
        transport.handle(GENERATE_PROTOCOL, self._serve_generate)
        transport.handle(ECHO_PROTOCOL, self._serve_echo)
        transport.handle(TABLE_PROTOCOL, self._serve_table)
        if router is not None and router.table is not None and router.statement is None:
            router.statement = vouch(transport.identity, router.table)  # a table on disk from before signing

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None, "the network service is not running"
        return self._nursery

    def announcement(self) -> PeerInfo:
        table = self.router.table if self.router else None
        return PeerInfo(
            peer_id=self.transport.peer_id,
            addrs=tuple(self.transport.listen_addrs),
            models=tuple(m.info for m in self.local.values()),
            load={name: ModelLoad(m.running, m.queue.waiting) for name, m in self.local.items()},
            version=__version__,
            http_url=self.http_url,
            hardware=cpu_description(),
            announced_at=time.time(),
            table_version=table.version if table else None,
            table_created_at=table.created_at if table else 0.0,
            ledger_head=self.ledger.ledger.head if self.ledger else None,
            ledger_entries=len(self.ledger.ledger) if self.ledger else 0,
        )

    def remote(self, model: str) -> RemoteModel | None:
        hosts = self.table.hosts_for(model)
        return RemoteModel(self, model, hosts) if hosts else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._listen_announcements)
            nursery.start_soon(self._announce_periodically)
            nursery.start_soon(self._follow_peer_events)
            if self.router is not None:
                nursery.start_soon(self.router.warm)
            task_status.started()

    async def _announce(self) -> None:
        await self.transport.publish(ANNOUNCE_TOPIC, to_wire(self.announcement()))

    async def _announce_periodically(self) -> None:
        while True:
            await self._announce()
            self.table.expire()
            # The heartbeat's round trips, so the router's latency prediction follows each peer's path
            # as it is now: through a relay, or direct once a hole is punched.
            for peer_id, rtt_ms in self.transport.rtts().items():
                self.table.record_rtt(peer_id, rtt_ms)
            await trio.sleep(self.announce_interval)

    async def _listen_announcements(self) -> None:
        async for sender, body in self.transport.subscribe(ANNOUNCE_TOPIC):
            self._learn(sender, body)

    def _learn(self, sender: str, body: dict[str, Any]) -> None:
        try:
            info = peer_from_wire(body)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("dropped a malformed announcement from %s: %s", sender, exc)
            return
        if info.peer_id != sender:
            log.warning("dropped an announcement from %s claiming to be %s", sender, info.peer_id)
            return
        if self.table.update(info):
            log.info("new peer %s hosting %s", sender, ", ".join(m.name for m in info.models) or "nothing")
        self.transport.add_addresses(sender, list(info.addrs))
        if self.ledger is not None and info.ledger_head is not None:
            self.ledger.offered(sender, info.ledger_head)
        if self.router is not None and info.table_version is not None:
            offered = info.table_version
            if self._table_refusal(info.table_created_at, offered) is None and offered not in self._pulling:
                self._pulling.add(offered)
                self.nursery.start_soon(self._pull_table, sender, offered)

    def _table_refusal(self, created_at: float, version: str) -> str | None:
        """Why a table offered by a peer is not taken (its date, its precedence, the hold), or None."""
        assert self.router is not None
        reason = refusal(created_at, version, self.router.table, time.time())
        taken = self.router.tried_at
        if reason is None and taken is not None and time.monotonic() - taken < TABLE_HOLD_S:
            return f"this node took up (or failed to store) a table less than {TABLE_HOLD_S:g} s ago"
        return reason

    def adopt_table(self, table: ClusterTable, statement: Statement | None = None) -> bool:
        """Use `table` if it supersedes ours, and tell the network at once rather than at the next beat.
        Without a `statement` (a table the operator installs here) this node signs it. Raises
        TableNotStored if it can't be written."""
        assert self.router is not None, "this node does not route"
        if not self.router.adopt(table, statement or vouch(self.transport.identity, table)):
            return False
        self.nursery.start_soon(self._announce)
        self.nursery.start_soon(self.router.warm)
        return True

    async def _pull_table(self, peer_id: str, version: str) -> None:
        try:
            body = await self.transport.request(peer_id, TABLE_PROTOCOL, {}, timeout=TABLE_TIMEOUT_S)
            table = ClusterTable.from_json(body["table"])
            statement = from_wire(body["statement"], kind=STATEMENT_KIND)
            if table.version != version:
                raise ValueError(f"it announced table {version} but sent {table.version}")
            if not vouches_for(statement, table):
                raise ValueError(f"its statement signs {statement.body}, not this table")
            if (reason := self._table_refusal(table.created_at, table.version)) is not None:
                raise ValueError(reason)
            if self.ledger is not None and not self.ledger.speaks(statement.signer):
                raise ValueError(f"it was installed by {statement.signer}, which has no say")
        except (PeerUnavailable, RequestTimeout, RemoteError) as exc:
            log.info("could not fetch routing table %s from %s: %s", version, peer_id, exc)
        except (KeyError, TypeError, ValueError) as exc:  # BadStatement is a ValueError
            log.warning("rejected routing table %s from %s: %s", version, peer_id, exc)
        else:
            with contextlib.suppress(TableNotStored):  # the router logged it and reports it
                self.adopt_table(table, statement)
        finally:
            self._pulling.discard(version)

    async def _follow_peer_events(self) -> None:
        async for event in self.transport.peer_events():
            if event.state == "up":
                self.nursery.start_soon(self._pull_info, event.peer_id)
            elif self.table.remove(event.peer_id):
                log.info("peer %s is down: removed from the peer table", event.peer_id)

    async def _pull_info(self, peer_id: str) -> None:
        started = time.perf_counter()
        try:
            body = await self.transport.request(peer_id, INFO_PROTOCOL, {}, timeout=INFO_TIMEOUT_S)
        except (PeerUnavailable, RequestTimeout, RemoteError) as exc:
            log.info("could not ask %s what it hosts: %s", peer_id, exc)
            return
        self._learn(peer_id, body)
        self.table.record_rtt(peer_id, (time.perf_counter() - started) * 1000)

    async def ping(self, peer_id: str, size: int, count: int) -> list[float]:
        """Round trips of `size`-byte messages to a peer, in milliseconds (for diagnostics and benchmarks)."""
        payload = {"data": "x" * size}
        times = []
        for _ in range(count):
            started = time.perf_counter()
            await self.transport.request(peer_id, ECHO_PROTOCOL, payload, timeout=INFO_TIMEOUT_S)
            times.append((time.perf_counter() - started) * 1000)
        return times

    async def _serve_echo(self, sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield body

    async def _serve_table(self, sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        table = self.router.table if self.router else None
        if table is None:
            yield error_frame(EngineUnavailable("this node holds no routing table"))
            return
        assert self.router is not None and self.router.statement is not None  # signed when installed
        yield {"table": table.to_json(), "statement": self.router.statement.to_wire()}

    async def _serve_info(self, sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        yield to_wire(self.announcement())

    async def _serve_generate(self, sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        # Forwarded requests are served from local models only, so a request never loops between peers.
        try:
            request = request_from_wire(body["request"])
        except (KeyError, TypeError, ValueError) as exc:
            yield error_frame(InvalidRequest(f"malformed forwarded request: {exc}"))
            return
        hosted = self.local.get(request.model)
        if hosted is None:
            yield error_frame(EngineUnavailable(f"model {request.model!r} is not hosted here"))
            return
        try:
            # Held until the answer ends, so a peer's streams count against its concurrency throughout.
            admitted = self.admission.admit(sender, request.max_tokens) if self.admission else nullcontext()
            with admitted:
                stream = await hosted.stream(request)
                try:
                    async for piece in stream:
                        yield {"text": piece}
                    assert stream.result is not None
                    yield {"done": to_wire(stream.result)}
                finally:
                    await stream.aclose()
        except SERVED as error:
            yield error_frame(error)
