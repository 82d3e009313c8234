"""The errors a Transport raises, and libp2p's failures made readable (trap 10 of docs/libp2p.md):
exception groups flattened to the errors inside them, and libp2p's logger turned down to ERROR.
"""

from __future__ import annotations

import logging
import os

from libp2p.exceptions import MultiError


class TransportError(Exception):
    """Base of the errors a Transport raises."""


class TransportStartError(TransportError):
    """The transport can't start (port taken, bad address); the message says what to do."""


class PeerUnavailable(TransportError):
    """The peer can't be reached, or went away (connection refused, killed, stream reset)."""


class RequestTimeout(TransportError):
    """The call's total deadline passed (the peer may be frozen or overloaded)."""


class RemoteError(TransportError):
    """The peer answered with an error: its handler raised, or it refused our message."""


class FrameTooLarge(TransportError):
    """A frame header announced more than MAX_MESSAGE_BYTES; the frame is refused unread."""


def exception_leaves(exc: BaseException) -> list[BaseException]:
    """The real errors inside nested exception groups (trio and libp2p nest them many levels deep)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in exception_leaves(inner)]
    return [exc]


def describe(exc: BaseException) -> str:
    """One line for a person: each leaf error and, after a colon, the root causes libp2p wraps it around."""
    parts = []
    for leaf in exception_leaves(exc):
        text = str(leaf) or type(leaf).__name__
        roots = [str(root) for root in _root_causes(leaf) if root is not leaf and str(root) not in text]
        parts.append(text + (": " + "; ".join(dict.fromkeys(roots)) if roots else ""))
    return "; ".join(parts)


def _root_causes(exc: BaseException) -> list[BaseException]:
    inner: list[BaseException] = []
    if isinstance(exc, BaseExceptionGroup):
        inner = list(exc.exceptions)
    elif isinstance(exc, MultiError):
        inner = list(exc.errors)
    elif exc.__cause__ is not None:
        inner = [exc.__cause__]
    return [root for e in inner for root in _root_causes(e)] if inner else [exc]


def quiet_libp2p_logs() -> None:
    """libp2p at ERROR: it logs ordinary stream ends as errors. Left alone under LIBP2P_DEBUG."""
    if os.environ.get("LIBP2P_DEBUG"):
        return
    logging.getLogger("libp2p").setLevel(logging.ERROR)
    for name, logger in logging.root.manager.loggerDict.items():
        # Some of its modules set their own level on import, which would win over the parent's.
        if name.startswith("libp2p.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)
    # These two log every failed dial and stream open at ERROR, which the transport already raises
    # as PeerUnavailable with the cause: a down peer's heartbeat would log an error at every probe.
    for name in ("libp2p.transport.tcp.tcp", "libp2p.host.basic_host"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
