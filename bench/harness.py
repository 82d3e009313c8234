"""What the benchmarks that need a network share: an existing node, or a fresh 3-node testnet."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from swarm.progress import Bars, waiting
from testnet.process import NodeProcess
from testnet.testnet import Testnet

# The graded answers of every model to the data sets, shared by bench.routing and bench.consensus.
DEFAULT_STORE = Path.home() / ".swarm" / "bench" / "routing.jsonl"


@contextmanager
def started(net: Testnet) -> Iterator[Testnet]:
    """`net` up, how far its nodes are shown on stderr meanwhile, and down again at the end."""
    with Bars(transient=True) as bars:
        net.up(bars.update)
    try:
        yield net
    finally:
        net.down()


@contextmanager
def running(process: NodeProcess, what: str) -> Iterator[NodeProcess]:
    """`process` started under a spinner saying `what`, and stopped at the end."""
    with waiting(what):
        process.start()
    try:
        yield process
    finally:
        process.stop()


def on_network(run: Callable[[argparse.Namespace, str], Awaitable[None]], args: argparse.Namespace) -> None:
    """`run(args, url)` against `args.node` if one was given, else a 3-node testnet of the offline models."""
    if args.node:
        trio.run(run, args, args.node)
        return
    with (
        tempfile.TemporaryDirectory() as directory,
        started(Testnet(3, directory=Path(directory) / "net")) as net,
    ):
        trio.run(run, args, net.nodes[0].url)
