"""A local multi-node testnet: N real node processes on loopback, each with its own ports, data dir and model.

with Testnet(nodes=3) as net:          # for tests: stopped on exit
    net.nodes[0].url, net.nodes[2].models

swarm testnet up --nodes 3             # for people: left running, described in a state file
swarm testnet status [--json]
swarm testnet down
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from node.catalog import CATALOG
from node.config import default_data_dir

from .process import NodeProcess, NodeStartFailed

DEFAULT_MODELS = tuple(CATALOG)  # the three offline models, one per node
STATE_FILE = "testnet.json"
# The steps of `up`, as it reports them: `on_progress(step, done, total)`, `done` of `total` nodes through.
STARTED, CONVERGED = "nodes started", "nodes that see all peers"
Progress = Callable[[str, int, int], None]


def _ignore(step: str, done: int, total: int) -> None:
    """The Progress of a caller that shows none."""


def default_dir() -> Path:
    return default_data_dir().parent / "testnet"


@dataclass(frozen=True)
class TestnetNode:
    __test__ = False
    name: str
    url: str
    peer_id: str
    multiaddr: str
    models: tuple[str, ...]
    pid: int
    data_dir: str
    log: str


class Testnet:
    __test__ = False  # a helper for tests, not a test class

    def __init__(
        self,
        nodes: int = 3,
        models: list[str] | None = None,
        directory: Path | None = None,
        *,
        extra_args: tuple[str, ...] = ("--context-length", "1024"),
        announce_interval: float = 2.0,
        challenge_interval: float = 0.0,
        challenge_file: Path | None = None,
        accel: bool = False,
        start_timeout: float = 180.0,
    ) -> None:
        """`challenge_interval` 0 (the default): no node challenges another, so the network stays in its
        bootstrap, where every node has an equal say, and what a test sees does not hang on the luck of
        small models on challenge questions."""
        if nodes < 1:
            raise ValueError("a testnet needs at least one node")
        chosen = list(models or DEFAULT_MODELS)
        self.models = [chosen[i % len(chosen)] for i in range(nodes)]
        self.directory = Path(directory or default_dir())
        self.extra_args = extra_args
        self.announce_interval = announce_interval
        self.accel = accel
        self.challenge_args = ["--challenge-interval", str(challenge_interval)]
        if challenge_file is not None:
            self.challenge_args += ["--challenge-file", str(challenge_file)]
        self.start_timeout = start_timeout
        self.processes: list[NodeProcess] = []
        self.nodes: list[TestnetNode] = []
        self.converged_in: float | None = None  # seconds from every node up to every peer table complete

    @property
    def state_path(self) -> Path:
        return self.directory / STATE_FILE

    def _process(self, index: int, bootstrap: str | None) -> NodeProcess:
        args = [
            "--model", self.models[index],
            "--announce-interval", str(self.announce_interval),
            *self.challenge_args,
            *self.extra_args,
        ]  # fmt: skip
        if bootstrap:
            args += ["--bootstrap", bootstrap]
        return NodeProcess(self.directory / f"node-{index}", *args, detached=True, accel=self.accel)

    def up(self, on_progress: Progress = _ignore) -> list[TestnetNode]:
        """Start every node, wait until each sees all the others, write the state file; `on_progress`
        hears how many nodes are through each step (STARTED, CONVERGED) as they get through."""
        if self.state_path.exists() and _alive(load_state(self.directory)):
            raise NodeStartFailed(
                f"a testnet is already running from {self.directory}: run `swarm testnet down`"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        total = len(self.models)
        try:
            on_progress(STARTED, 0, total)
            first = self._process(0, None).start(self.start_timeout)
            self.processes.append(first)
            seed = _describe(first, "node-0")
            self.nodes.append(seed)
            on_progress(STARTED, 1, total)
            # The rest join through the first node and start (load their models) in parallel.
            rest = [self._process(i, seed.multiaddr) for i in range(1, len(self.models))]
            for process in rest:
                process.launch()
                self.processes.append(process)
            for i, process in enumerate(rest, start=1):
                process.wait_ready(self.start_timeout)
                self.nodes.append(_describe(process, f"node-{i}"))
                on_progress(STARTED, i + 1, total)
            self.converged_in = self.wait_converged(self.start_timeout, on_progress)
        except BaseException:
            self.down()
            raise
        self.state_path.write_text(json.dumps([asdict(n) for n in self.nodes], indent=2))
        return self.nodes

    def wait_converged(self, timeout: float, on_progress: Progress = _ignore) -> float:
        """Block until every node's peer table lists every other node; returns the seconds it took."""
        started = time.monotonic()
        expected = {n.peer_id for n in self.nodes}
        while True:
            converged = sum(_peer_ids(n.url) >= expected - {n.peer_id} for n in self.nodes)
            on_progress(CONVERGED, converged, len(self.nodes))
            if converged == len(self.nodes):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise NodeStartFailed(f"the testnet did not converge within {timeout:g} s")
            time.sleep(0.2)

    def down(self) -> None:
        for process in self.processes:
            process.stop()
        self.processes.clear()
        self.state_path.unlink(missing_ok=True)

    def __enter__(self) -> Testnet:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def _describe(process: NodeProcess, name: str) -> TestnetNode:
    state = json.loads((process.data_dir / "node.json").read_text())
    return TestnetNode(
        name=name,
        url=process.url,
        peer_id=state["peer_id"],
        multiaddr=state["p2p_addrs"][0],
        models=tuple(state["models"]),
        pid=state["pid"],
        data_dir=str(process.data_dir),
        log=str(process.log_path),
    )


def _peer_ids(url: str) -> set[str]:
    try:
        body = httpx.get(f"{url}/v1/peers", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return set()
    return {p["peer_id"] for p in body.get("peers", ())}


def load_state(directory: Path | None = None) -> list[TestnetNode]:
    path = Path(directory or default_dir()) / STATE_FILE
    try:
        return [TestnetNode(**{**n, "models": tuple(n["models"])}) for n in json.loads(path.read_text())]
    except FileNotFoundError:
        return []


def _alive(nodes: list[TestnetNode]) -> bool:
    return any(_pid_alive(n.pid) for n in nodes)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(directory: Path | None = None) -> list[dict[str, object]]:
    """Each node of the running testnet with whether it answers and how many peers it sees."""
    report = []
    for node in load_state(directory):
        try:
            health = httpx.get(f"{node.url}/health", timeout=2.0).json()
            state, peers = health["status"], health.get("peers", 0)
        except (httpx.HTTPError, ValueError):
            state, peers = ("down" if not _pid_alive(node.pid) else "not answering"), 0
        report.append({**asdict(node), "models": list(node.models), "state": state, "peers": peers})
    return report


def stop(directory: Path | None = None, timeout: float = 15.0) -> int:
    """Stop every node of the testnet described in the state file; returns how many were running."""
    directory = Path(directory or default_dir())
    nodes = load_state(directory)
    running = [n for n in nodes if _pid_alive(n.pid)]
    for node in running:
        os.kill(node.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for node in running:
        while _pid_alive(node.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(node.pid):
            os.kill(node.pid, signal.SIGKILL)
    (directory / STATE_FILE).unlink(missing_ok=True)
    return len(running)


def say_holders(url: str) -> tuple[dict[str, set[str]], dict[str, bool]]:
    """Per domain, the peers holding a say as the node at `url` computes it, and whether it is open."""
    summary = httpx.get(f"{url}/v1/ledger", params={"limit": 0}, timeout=30).json()
    holders: dict[str, set[str]] = {d: set() for d in summary["domains"]}
    for row in summary["reputation"]:
        for domain, say in row["domains"].items():
            if say["holds"]:
                holders[domain].add(row["peer_id"])
    return holders, {d: s["open"] for d, s in summary["domains"].items()}


def say_changes(before: dict[str, set[str]], after: dict[str, set[str]], names: dict[str, str]) -> list[str]:
    """What changed between two readings of `say_holders`, in words: "node-1 gains its say in logic"."""
    lines = []
    for domain in after:
        was = before.get(domain, set())
        lines += [f"{names.get(p, p)} gains its say in {domain}" for p in sorted(after[domain] - was)]
        lines += [f"{names.get(p, p)} loses its say in {domain}" for p in sorted(was - after[domain])]
    return lines


def watch_say(nodes: list[TestnetNode], every_s: float = 5.0) -> None:
    """Print each gain and loss of a say as the first node's ledger shows it, until interrupted."""
    names = {n.peer_id: n.name for n in nodes}
    held: dict[str, set[str]] = {}
    while True:
        try:
            now, _ = say_holders(nodes[0].url)
        except (httpx.HTTPError, KeyError, ValueError):
            time.sleep(every_s)
            continue
        for line in say_changes(held, now, names):
            print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)
        held = now
        time.sleep(every_s)
