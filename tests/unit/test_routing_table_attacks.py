"""Hole 6's rules without a network: which tables a node takes from a peer, and which it refuses."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import trio

from bench.attack_routing_table_api import YEAR_3000, UnusedEmbedder, table
from core.envelope import DEFAULT_MAX_SKEW_S
from core.identity import Identity
from core.statements import Statement, sign
from node.network import TABLE_HOLD_S, NetworkService
from node.router import Router
from routing.table import ClusterTable, refusal, vouch


class Serving:
    """A transport whose every peer answers a table request with `body`, and that gossips to nobody."""

    listen_addrs: tuple[str, ...] = ()

    def __init__(self, identity: Identity) -> None:
        self.identity, self.peer_id = identity, identity.peer_id
        self.body: dict[str, Any] = {}

    def handle(self, protocol: str, handler: object) -> None:
        pass

    async def publish(self, topic: str, body: dict[str, Any]) -> None:
        pass

    async def request(
        self, peer_id: str, protocol: str, body: dict[str, Any], timeout: float
    ) -> dict[str, Any]:
        return self.body


class NoEntries:
    head = None

    def __len__(self) -> int:
        return 0


class Say:
    """The ledger service, reduced to who has a say (and an empty ledger to announce)."""

    ledger = NoEntries()

    def __init__(self, *peers: str) -> None:
        self.peers = set(peers)

    def speaks(self, peer_id: str) -> bool:
        return peer_id in self.peers


async def pulled(tmp_path: Path, offered: ClusterTable, statement: Statement, say: Say) -> Router:
    """What the node holds after a peer served it `offered` with `statement`."""
    router = Router(tmp_path, embedder=UnusedEmbedder)
    transport = Serving(Identity.load_or_create(tmp_path / "node"))
    network = NetworkService(transport, {}, router=router, ledger=say)  # type: ignore[arg-type]
    transport.body = {"table": offered.to_json(), "statement": statement.to_wire()}
    async with trio.open_nursery() as nursery:
        network._nursery = nursery
        await network._pull_table("peer", offered.version)
        nursery.cancel_scope.cancel()
    return router


@pytest.fixture
def honest(tmp_path: Path) -> Identity:
    return Identity.load_or_create(tmp_path / "honest")


@pytest.fixture
def sybil(tmp_path: Path) -> Identity:
    return Identity.load_or_create(tmp_path / "sybil")


async def test_a_table_signed_by_a_peer_without_a_say_is_refused(
    tmp_path: Path, honest: Identity, sybil: Identity
) -> None:
    offered = table(time.time())
    assert (await pulled(tmp_path / "a", offered, vouch(sybil, offered), Say(honest.peer_id))).table is None
    taken = await pulled(tmp_path / "b", offered, vouch(honest, offered), Say(honest.peer_id))
    assert taken.table is not None and taken.table.version == offered.version
    assert taken.statement is not None and taken.statement.signer == honest.peer_id
    again = Router(tmp_path / "b", embedder=UnusedEmbedder)
    assert again.statement == taken.statement


async def test_a_signature_over_another_table_or_none_is_refused(tmp_path: Path, honest: Identity) -> None:
    offered, other = table(time.time()), table(time.time(), seed=1)
    say = Say(honest.peer_id)
    assert (await pulled(tmp_path / "a", offered, vouch(honest, other), say)).table is None
    # A statement of another kind over the same fields: a ballot or a commitment can't pass for it.
    unsigned = sign(honest, "commitment", {"version": offered.version, "created_at": offered.created_at})
    assert (await pulled(tmp_path / "b", offered, unsigned, say)).table is None


def test_a_date_past_the_clock_skew_or_not_a_number_is_refused() -> None:
    now = time.time()
    held = table(now - 100)
    assert "ahead" in (refusal(YEAR_3000, "v", held, now) or "")
    assert "ahead" in (refusal(now + DEFAULT_MAX_SKEW_S + 1, "v", held, now) or "")
    assert refusal(now + DEFAULT_MAX_SKEW_S - 1, "v", held, now) is None  # a clock a little ahead is fine
    for weird in (math.inf, math.nan):
        assert "not a number" in (refusal(weird, "v", held, now) or "")
    assert "supersede" in (refusal(now - 200, "v", held, now) or "")
    infinite = json.loads(held.to_json())
    infinite["created_at"] = math.inf
    del infinite["version"]
    with pytest.raises(ValueError, match="finite"):
        ClusterTable.from_json(json.dumps(infinite))  # json.dumps writes Infinity, json.loads reads it


async def test_a_peer_with_a_say_moves_a_node_at_most_once_per_hold(tmp_path: Path, honest: Identity) -> None:
    router = Router(tmp_path, embedder=UnusedEmbedder)
    transport = Serving(Identity.load_or_create(tmp_path / "node"))
    network = NetworkService(transport, {}, router=router, ledger=Say(honest.peer_id))  # type: ignore[arg-type]
    versions = []
    async with trio.open_nursery() as nursery:
        network._nursery = nursery
        for step in range(3):  # a new table every second, each newer than the last
            offered = table(time.time() + step, seed=step)
            transport.body = {"table": offered.to_json(), "statement": vouch(honest, offered).to_wire()}
            await network._pull_table("peer", offered.version)
            versions.append(offered.version)
        assert router.table is not None and router.table.version == versions[0]
        assert router.tried_at is not None
        router.tried_at -= TABLE_HOLD_S  # the hold is over: the newest offer is taken when re-offered
        await network._pull_table("peer", versions[-1])
        nursery.cancel_scope.cancel()
    assert router.table.version == versions[-1]
