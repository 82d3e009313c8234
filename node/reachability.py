"""What a node tells its operator about being reachable: at start-up, in /health and in `swarm peers`.

The verdict itself comes from the transport (node/transport/reachability.py): peers dial this node
back from fresh identities; behind NAT it holds reservations on relays (node/transport/relay.py).
"""

from __future__ import annotations

import multiaddr

from core.wire.admin import Reachability

from .transport import Transport


def reachability(transport: Transport) -> Reachability:
    """The transport's verdict and relays, with what the operator can do about them."""
    status, relays = transport.reachability.status, transport.relays
    p2p_port = multiaddr.Multiaddr(transport.listen_addrs[0]).value_for_protocol("tcp")
    if status == "public":
        advice = "reachable from the internet: peers connect to this node directly"
    elif status == "private" and relays:
        advice = (
            f"behind NAT: reachable through relay {relays[0]}; open port {p2p_port} (TCP) or pass "
            "--public-addr for direct connections"
        )
    elif status == "private":
        advice = (
            f"behind NAT and no relay holds a slot for this node yet, so peers can't reach it: open port "
            f"{p2p_port} (TCP), pass --public-addr, or join through a node started with --relay"
        )
    else:
        advice = "reachability not known yet: no peer has dialed this node back"
    return Reachability(
        status=status,
        relays=relays,
        confirmed_by=list(transport.reachability.confirmed_by),
        relay_service=transport.relay_served is not None,
        advice=advice,
    )
