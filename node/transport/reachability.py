"""A reachability check that really dials: peers are asked to dial our addresses back from a fresh
identity over a new connection (docs/libp2p.md, "NAT traversal").

libp2p's AutoNAT v1 "dials back" with `host.connect`, which returns at once over the connection that
already exists, so it says PUBLIC without dialing anything. Here the peer that is asked starts a
host of its own under a new key, with no connection to anyone, and dials each address: only a node
that a stranger can reach passes. Being asked to dial lends a stranger our dials, so a peer dials
only addresses at the IP its connection from the asker comes from (no one can aim it at a third
host), at most MAX_DIALBACK_ADDRS of them, one check per asker at a time, DIALBACK_CONCURRENCY in
all, each dial within DIALBACK_DIAL_TIMEOUT_S.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import multiaddr
import trio
from libp2p.abc import IHost
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.network.swarm import Swarm
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo

from .errors import describe
from .relay import connection_path

log = logging.getLogger("swarm.transport")

DIALBACK_PROTOCOL = "/swarm/dialback/1.0.0"
MAX_DIALBACK_ADDRS = 4
DIALBACK_DIAL_TIMEOUT_S = 5.0
DIALBACK_CONCURRENCY = 4
PEERS_ASKED = 3  # a node's reachability is what most of this many peers found

Status = Literal["public", "private", "unknown"]
HostFactory = Callable[..., IHost]  # a hardened host for a key pair (transport.hardened_host)
Ask = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]  # (peer, body) -> the peer's reply


class DialbackRefused(Exception):
    """The request can't be served; the message says why (the asker sees it)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    confirmed_by: tuple[str, ...]  # peers whose fresh identity reached us
    denied_by: tuple[str, ...]  # peers that answered and could not
    reachable: tuple[str, ...]  # our addresses some stranger reached


def _tcp_endpoint(address: str) -> tuple[str, int]:
    """(ip, port) of a plain /ip4|ip6/<ip>/tcp/<port> address; ValueError otherwise."""
    addr = multiaddr.Multiaddr(address)
    names = [p.name for p in addr.protocols()]
    if names[:2] not in (["ip4", "tcp"], ["ip6", "tcp"]) or len(names) > 3 or names[2:] not in ([], ["p2p"]):
        raise ValueError(f"{address} is not an /ip4|ip6/<ip>/tcp/<port> address")
    return str(ipaddress.ip_address(addr.value_for_protocol(names[0]))), int(addr.value_for_protocol("tcp"))


class DialbackServer:
    """Serves DIALBACK_PROTOCOL: dials an asker back from a fresh identity."""

    def __init__(self, swarm: Swarm, new_host: HostFactory) -> None:
        self._swarm, self._new_host = swarm, new_host
        self._asking: set[str] = set()
        self._limiter = trio.CapacityLimiter(DIALBACK_CONCURRENCY)
        self.served = 0

    def _observed_ips(self, peer_id: str) -> set[str]:
        """The IPs the asker's direct connections to us come from."""
        ips = set()
        for conn in self._swarm.get_connections(ID.from_base58(peer_id)):
            path = connection_path(conn)
            if path.kind == "direct" and path.remote:
                ips.add(str(ipaddress.ip_address(path.remote.rsplit(":", 1)[0].strip("[]"))))
        return ips

    async def handle(self, sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        addrs = body.get("addrs")
        if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
            raise DialbackRefused("addrs must be a list of multiaddrs")
        if len(addrs) > MAX_DIALBACK_ADDRS:
            raise DialbackRefused(f"at most {MAX_DIALBACK_ADDRS} addresses are dialed back, not {len(addrs)}")
        if sender in self._asking:
            raise DialbackRefused("a dial-back for this peer is already running")
        observed = self._observed_ips(sender)
        results: dict[str, str] = {}
        self._asking.add(sender)
        try:
            async with self._limiter:
                for address in addrs:
                    results[address] = await self._check(sender, address, observed)
        finally:
            self._asking.discard(sender)
        self.served += 1
        yield {"results": results, "observed": sorted(observed)}

    async def _check(self, sender: str, address: str, observed: set[str]) -> str:
        try:
            ip, port = _tcp_endpoint(address)
        except ValueError as exc:
            return f"refused: {exc}"
        if ip not in observed:
            seen = ", ".join(sorted(observed)) or "a relay"
            return f"refused: {ip} is not where your connection comes from ({seen})"
        target = multiaddr.Multiaddr(f"/{'ip6' if ':' in ip else 'ip4'}/{ip}/tcp/{port}")
        stranger = self._new_host(create_new_key_pair())
        async with stranger.run([]):
            with trio.move_on_after(DIALBACK_DIAL_TIMEOUT_S):
                try:
                    await stranger.connect(PeerInfo(ID.from_base58(sender), [target]))
                except Exception as exc:  # any failure of any layer: not reachable there
                    return f"unreachable: {describe(exc)}"
                return "reachable"
            return f"unreachable: no connection within {DIALBACK_DIAL_TIMEOUT_S:g} s"


def verdict(answers: dict[str, dict[str, str]]) -> Verdict:
    """Public when most of the peers that answered reached one of our addresses from a fresh identity."""
    confirmed = tuple(p for p, results in answers.items() if "reachable" in results.values())
    denied = tuple(p for p in answers if p not in confirmed)
    reachable = tuple(
        sorted({a for r in answers.values() for a, result in r.items() if result == "reachable"})
    )
    if not answers:
        return Verdict("unknown", (), (), ())
    status: Status = "public" if len(confirmed) * 2 > len(answers) else "private"
    return Verdict(status, confirmed, denied, reachable)


async def check(ask: Ask, peers: list[str], addrs: list[str]) -> Verdict:
    """Ask up to PEERS_ASKED of `peers` to dial `addrs` back, at once; a peer that fails to answer, or
    answers nonsense, is left out."""
    answers: dict[str, dict[str, str]] = {}
    wanted = addrs[:MAX_DIALBACK_ADDRS]

    async def one(peer: str) -> None:
        try:
            reply = await ask(peer, {"addrs": wanted})
        except Exception as exc:  # a peer that can't or won't check is simply not counted
            log.info("reachability check by %s failed: %s", peer, describe(exc))
            return
        results = reply.get("results")
        if isinstance(results, dict) and set(results) <= set(wanted):
            answers[peer] = {str(a): str(r) for a, r in results.items()}

    async with trio.open_nursery() as nursery:
        for peer in peers[:PEERS_ASKED]:
            nursery.start_soon(one, peer)
    return verdict(answers)
