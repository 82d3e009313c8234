"""A Transport in a process of its own, for the tests that kill, freeze or restart a peer.

    python -m tests.support.transport_peer DATA_DIR PORT

Serves ECHO (the body back) and COUNT (body["n"] replies, body["delay"] seconds
apart), and prints "ready <multiaddr>" once it listens.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import trio

from core.identity import Identity
from node.transport import Transport

ECHO = "/test/echo/1.0.0"
COUNT = "/test/count/1.0.0"


async def echo(sender: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    yield body


async def count(sender: str, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
    for i in range(body["n"]):
        yield {"i": i}
        await trio.sleep(body.get("delay", 0))


async def main(data_dir: Path, port: int) -> None:
    transport = Transport(Identity.load_or_create(data_dir), port=port)
    transport.handle(ECHO, echo)
    transport.handle(COUNT, count)
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run)
        print("ready", transport.listen_addrs[0], flush=True)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]))
