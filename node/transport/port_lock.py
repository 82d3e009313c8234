"""A lock on the listening port (trap 9 of docs/libp2p.md): libp2p binds with SO_REUSEPORT, so a second
node's bind on a taken port succeeds, and the two would share its connections.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..locks import LockHeld, PidLock
from .errors import TransportStartError


def default_lock_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return (
        Path(runtime) / "swarm-ports"
        if runtime
        else Path(tempfile.gettempdir()) / f"swarm-ports-{os.getuid()}"
    )


@contextmanager
def port_lock(directory: Path, port: int) -> Iterator[None]:
    """An exclusive lock on a TCP port, for as long as this process listens on it."""
    try:
        with PidLock(directory / f"tcp-{port}.lock"):
            yield
    except LockHeld as held:
        raise TransportStartError(
            f"p2p port {port} is already used by another swarm node "
            f"(pid {held.holder}, lock {held.path}): stop that node or pick another p2p port"
        ) from None
