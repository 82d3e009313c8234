"""Hole 9a: a peer answering a ledger pull with `more: true` forever, or with endless entries in one reply,
against a node's real ledger service and transport on loopback (the Sybil: a transport in this process)."""

from __future__ import annotations

from pathlib import Path

from bench.attack_resource_bounds import endless_pull
from node.ledger import PULL_LIMIT, PULL_ROUNDS


async def test_a_peer_saying_more_forever_gets_a_pull_of_bounded_rounds(tmp_path: Path) -> None:
    asked, taken, returned = await endless_pull(tmp_path, endless_entries=False, within=20.0)
    assert returned, f"the pull still runs after 20 s, {asked} requests on"
    assert asked <= PULL_ROUNDS and taken == 0


async def test_a_reply_of_endless_entries_is_cut_at_the_pull_limit(tmp_path: Path) -> None:
    asked, taken, returned = await endless_pull(tmp_path, endless_entries=True, within=30.0)
    assert returned, f"the pull still runs after 30 s, {asked} requests and {taken} entries on"
    assert taken <= PULL_LIMIT + 200, taken  # the frame that crossed the limit is the last one read
