"""Peers that misbehave on purpose: bare libp2p hosts that bypass our transport and its checks."""

from __future__ import annotations

from libp2p import new_host
from libp2p.abc import IHost
from libp2p.crypto.x25519 import create_new_key_pair as create_noise_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux

from core.identity import Identity
from node.transport import libp2p_key_pair


def raw_host(identity: Identity, *, plaintext: bool = False) -> IHost:
    """A bare libp2p host that plays a misbehaving peer: it writes whatever bytes it likes."""
    key_pair = libp2p_key_pair(identity)
    security = (
        {PLAINTEXT_PROTOCOL_ID: InsecureTransport(key_pair)}
        if plaintext
        else {NOISE_PROTOCOL_ID: NoiseTransport(key_pair, noise_privkey=create_noise_key_pair().private_key)}
    )
    return new_host(
        key_pair=key_pair,
        sec_opt=security,
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        connection_config=ConnectionConfig(max_connections_per_peer=1),
    )
