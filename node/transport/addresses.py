"""Our own address book (trap 5 of docs/libp2p.md): what the peer store learns (identify, the DHT,
mDNS) is copied here before it expires. Also the parsing of the peer ids and addresses we are given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import multiaddr
from libp2p.abc import IPeerStore
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.peer.peerstore import PeerStoreError
from libp2p.utils.address_validation import expand_wildcard_address

from .errors import PeerUnavailable

log = logging.getLogger("swarm.transport")

MAX_ADDRS_PER_PEER = 8
# Any key may announce itself, so a flood of fresh keys must not grow the book (nor the heartbeat that
# probes it) without end: past this many peers, the one heard of or answering longest ago goes.
MAX_PEERS = 1024


class AddressBook:
    """The TCP addresses of at most MAX_PEERS peers we have heard of but ourselves, at most
    MAX_ADDRS_PER_PEER each; the bootstrap peers (`kept`) are never dropped."""

    def __init__(self, own_peer_id: str, peerstore: IPeerStore, kept: Iterable[str] = ()) -> None:
        self._own_peer_id = own_peer_id
        self._peerstore = peerstore
        self.kept = frozenset(kept)
        # peer id -> its addresses (an ordered set, newest last); the peers heard of or answering longest
        # ago first
        self._book: dict[str, dict[str, None]] = {}

    def peers(self) -> list[str]:
        return list(self._book)

    def addresses(self, peer_id: str) -> list[str]:
        return list(self._book.get(peer_id, ()))

    def multiaddrs(self, peer_id: str) -> list[multiaddr.Multiaddr]:
        return [multiaddr.Multiaddr(a) for a in self._book.get(peer_id, ())]

    def add(self, peer_id: str, addrs: Iterable[str]) -> None:
        """Addresses as a peer or a person wrote them: bad ones and those naming another peer are skipped."""
        parsed = []
        for address in addrs:
            try:
                addr = multiaddr.Multiaddr(address)
            except ValueError as exc:
                log.debug("skipped address %r of %s: %s", address, peer_id, exc)
                continue
            owner = addr.get_peer_id()
            if owner is not None and owner != peer_id:
                log.debug("skipped address %s given for %s: it names another peer", address, peer_id)
                continue
            parsed.append(addr)
        self.remember(peer_id, parsed)

    def remember(self, peer_id: str, addrs: Iterable[multiaddr.Multiaddr]) -> None:
        if peer_id == self._own_peer_id:
            return
        book = self._book.pop(peer_id, {})
        self._book[peer_id] = book
        for addr in addrs:
            if addr.get_peer_id() is not None:
                addr = addr.decapsulate_code(multiaddr.protocols.P_P2P)
            if "tcp" not in {p.name for p in addr.protocols()}:
                continue  # only TCP is dialed here, directly or to a relay (.../p2p/<relay>/p2p-circuit)
            key = str(addr)
            book.pop(key, None)
            book[key] = None
            while len(book) > MAX_ADDRS_PER_PEER:
                del book[next(iter(book))]
        self._evict()

    def answered(self, peer_id: str) -> None:
        """The peer answered: it is the last to go when the book is full."""
        if peer_id in self._book:
            self._book[peer_id] = self._book.pop(peer_id)

    def forget(self, peer_id: str) -> None:
        if peer_id not in self.kept:
            self._book.pop(peer_id, None)

    def _evict(self) -> None:
        if len(self._book) <= MAX_PEERS:
            return
        for peer_id in [p for p in self._book if p not in self.kept][: len(self._book) - MAX_PEERS]:
            del self._book[peer_id]

    def absorb(self, peer: ID) -> None:
        """Copy what the peer store knows of `peer`."""
        try:
            addrs = self._peerstore.addrs(peer)
        except PeerStoreError:
            return
        self.remember(peer.to_base58(), addrs)


def dialable(addrs: list[multiaddr.Multiaddr]) -> list[multiaddr.Multiaddr]:
    """What peers can dial: a wildcard listen address (0.0.0.0) becomes one address per interface."""
    return [concrete for addr in addrs for concrete in expand_wildcard_address(addr)]


def peer_address(address: str) -> PeerInfo:
    try:
        return info_from_p2p_addr(multiaddr.Multiaddr(address))
    except ValueError as exc:
        raise ValueError(f"{address!r} is not a multiaddr ending in /p2p/<peer id>: {exc}") from None


def peer_of(peer_id: str) -> ID:
    try:
        return ID.from_base58(peer_id)
    except ValueError:
        raise PeerUnavailable(f"{peer_id!r} is not a peer id") from None
