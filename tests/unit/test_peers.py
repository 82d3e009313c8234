from __future__ import annotations

from core.records import ModelInfo, ModelLoad, PeerInfo, peer_from_wire, to_wire
from node.peers import PeerTable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _peer(
    pid: str,
    *,
    model: str = "m",
    running: int = 0,
    waiting: int = 0,
    tps: float | None = None,
    parallel: int = 1,
    at: float = 1.0,
) -> PeerInfo:
    info = ModelInfo(model, "llamacpp", "-", 512, True, "cpu", parallel, tps)
    return PeerInfo(
        pid,
        (f"/ip4/127.0.0.1/tcp/1/p2p/{pid}",),
        (info,),
        {model: ModelLoad(running, waiting)},
        "0.1",
        announced_at=at,
    )


def test_hosts_are_ranked_least_loaded_then_fastest_then_nearest() -> None:
    table = PeerTable("self")
    table.update(_peer("busy", running=1, tps=500))
    table.update(_peer("slow", tps=10))
    table.update(_peer("fast-far", tps=50))
    table.update(_peer("fast-near", tps=50))
    table.record_rtt("fast-far", 40.0)
    table.record_rtt("fast-near", 2.0)
    assert [e.info.peer_id for e in table.hosts_for("m")] == ["fast-near", "fast-far", "slow", "busy"]


def test_load_is_per_slot() -> None:
    table = PeerTable("self")
    table.update(_peer("big", running=2, parallel=4))  # half busy
    table.update(_peer("small", running=1, parallel=1))  # full
    assert [e.info.peer_id for e in table.hosts_for("m")] == ["big", "small"]


def test_silent_peers_expire_and_late_announcements_are_ignored() -> None:
    clock = Clock()
    table = PeerTable("self", ttl=10, clock=clock)
    assert table.update(_peer("a", at=5.0)) is True
    assert table.update(_peer("a", at=6.0)) is False
    table.update(_peer("a", model="old", at=4.0))  # older than what we have
    assert [m.name for m in table.get("a").info.models] == ["m"]
    clock.now += 11
    table.update(_peer("b", at=7.0))
    assert table.expire() == ["a"]
    assert [e.info.peer_id for e in table.peers()] == ["b"]


def test_self_is_never_a_peer_and_removal_works() -> None:
    table = PeerTable("self")
    assert table.update(_peer("self")) is False
    table.update(_peer("x"))
    assert table.remove("x") and not table.remove("x")
    assert table.peers() == []


def test_models_lists_every_host() -> None:
    table = PeerTable("self")
    table.update(_peer("a", model="m1"))
    table.update(_peer("b", model="m1"))
    table.update(_peer("c", model="m2"))
    assert {name: [e.info.peer_id for e in hosts] for name, hosts in table.models().items()} == {
        "m1": ["a", "b"],
        "m2": ["c"],
    }


def test_announcements_survive_the_wire() -> None:
    info = _peer("a", running=2, waiting=3, tps=12.5)
    assert peer_from_wire(to_wire(info)) == info
