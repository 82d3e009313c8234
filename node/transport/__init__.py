"""The node's one door to the peer network: a hardened py-libp2p host and the few things the node needs.

Run it in the node's trio nursery; `run` returns control once it listens:

    transport = Transport(identity, port=8421, bootstrap=["/ip4/.../tcp/8421/p2p/12D3KooW..."])
    transport.handle("/swarm/echo/1.0.0", echo)        # an async generator of replies
    await nursery.start(transport.run)
    reply = await transport.request(peer_id, "/swarm/echo/1.0.0", {"x": 1}, timeout=5)

Cancelling the nursery stops it. A Transport runs once. Every message is a
sealed envelope (core.envelope), checked against the peer that sent it.

What it adds to py-libp2p 0.8.1 is each for a trap of docs/libp2p.md; each
file says which traps its code works around:

    transport.py    the Transport: the host (Noise, yamux, two connections per peer), its life cycle,
                    the calls the node makes, reachability and relay reservations
    relay.py        Circuit Relay v2 (serving, dialing circuits, reservations) and DCUtR hole punching
    reachability.py the dial-back check: peers dial us from fresh identities
    connections.py  dialing (direct first, then circuits), identify's addresses handed to the DHT,
                    joining through bootstrap peers
    addresses.py    our own address book; parsing peer ids and addresses
    heartbeat.py    our own heartbeat: which peers are up, and events when that changes
    requests.py     request and response on streams, one deadline per call; the counters /metrics shows
    pubsub.py       GossipSub topics, checked and paced
    framing.py      length-prefixed frames on a stream
    listeners.py    channels to many listeners that never block the sender
    port_lock.py    a lock on the listening port
    errors.py       the errors a Transport raises; exception groups flattened; libp2p's logs quieted
"""

from .addresses import MAX_ADDRS_PER_PEER
from .errors import PeerUnavailable, RemoteError, RequestTimeout, TransportStartError, exception_leaves
from .framing import FrameReader, write_frame
from .heartbeat import PeerEvent
from .pubsub import PUBLISH_MIN_INTERVAL_S
from .requests import TransportCounters
from .transport import Transport, libp2p_key_pair

__all__ = [
    "MAX_ADDRS_PER_PEER",
    "PUBLISH_MIN_INTERVAL_S",
    "FrameReader",
    "PeerEvent",
    "PeerUnavailable",
    "RemoteError",
    "RequestTimeout",
    "Transport",
    "TransportCounters",
    "TransportStartError",
    "exception_leaves",
    "libp2p_key_pair",
    "write_frame",
]
