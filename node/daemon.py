"""`swarm node start`: load the models, serve the API, stop cleanly.

One trio process: hypercorn serves the ASGI app while engines run in worker
threads (and, for vLLM, in supervised child processes). The data dir holds
the node's state and a lock, so two nodes never share one by accident.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import hypercorn.config
import hypercorn.trio
import trio

from consensus import Ledger
from core.identity import Identity, IdentityError
from node.config import NodeConfig
from reputation import Rules
from routing.datasets import DatasetError, challenge_bank

from .accel import AccelConfig, Accelerator
from .admission import Admission, ServePolicy
from .api import NodeState, create_app
from .api.dashboard import round_provenance
from .api.guard import loopback
from .catalog import CatalogError, Progress
from .challenges import ChallengeConfig, ChallengeService
from .engines import load_engine
from .engines.base import Engine, EngineError
from .events import EventBus
from .hosting import HostedModel
from .ledger import LedgerService
from .locks import LockHeld, PidLock
from .metrics import NodeMetrics
from .network import NetworkService
from .reachability import reachability
from .rounds import RoundConfig, RoundService
from .router import Router
from .transport import Transport, TransportStartError, exception_leaves
from .watch import Watch

log = logging.getLogger("swarm.node")

STATE_FILE = "node.json"


class NodeStartError(Exception):
    """The node can't start; the message says why and what to do."""


@contextmanager
def _data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Held for the node's life, so two nodes never share one data dir by accident."""
    try:
        with PidLock(data_dir / "node.lock"):
            yield
    except LockHeld as held:
        raise NodeStartError(
            f"data dir {data_dir} is in use by pid {held.holder}: stop that node or pass another --data-dir"
        ) from None


Loaded = Callable[[int, int], None]  # on_loaded(done, total): `done` of the node's `total` models are loaded


def _load_engines(config: NodeConfig, on_loaded: Loaded, on_bytes: Progress | None) -> list[Engine]:
    engines: list[Engine] = []
    try:
        for model in config.models:
            on_loaded(len(engines), len(config.models))
            log.info("loading %s (%s backend)", model.model, model.backend)
            engines.append(load_engine(model, config.cache_dir, config.data_dir / "logs", on_bytes))
        on_loaded(len(engines), len(config.models))
    except (CatalogError, EngineError) as exc:
        for engine in engines:
            engine.close()
        raise NodeStartError(str(exc)) from None
    return engines


def _write_state(config: NodeConfig, url: str, models: list[str], transport: Transport) -> Path:
    path = config.data_dir / STATE_FILE
    state = {
        "pid": os.getpid(),
        "url": url,
        "peer_id": transport.peer_id,
        "p2p_addrs": transport.listen_addrs,
        "models": models,
        "started": time.time(),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)
    return path


async def _stop_on_signal(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: stopping", signal.Signals(signum).name)
            shutdown.set()
            return


async def _report_reachability(transport: Transport) -> None:
    """Tell the operator whether strangers reach this node, and what to do, whenever that changes."""
    said: tuple[str, tuple[str, ...]] | None = None
    while True:
        view = reachability(transport)
        if view.status != "unknown" and (view.status, tuple(view.relays)) != said:
            said = (view.status, tuple(view.relays))
            print(view.advice, flush=True)
        await trio.sleep(1.0)


def _ignore(done: int, total: int) -> None:
    """The Loaded callback of a caller that shows no progress."""


async def run_node(config: NodeConfig, on_loaded: Loaded = _ignore, on_bytes: Progress | None = None) -> None:
    """Run the node until SIGINT or SIGTERM; `on_loaded` and `on_bytes` follow the loading of its models
    (how many are loaded; the bytes of assembling and checking catalogued ones)."""
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (config.data_dir / "logs").mkdir(exist_ok=True, mode=0o700)
    with _data_dir_lock(config.data_dir):
        try:
            identity = Identity.load_or_create(config.data_dir)
            transport = Transport(
                identity,
                host=config.p2p_host,
                port=config.p2p_port,
                bootstrap=config.bootstrap,
                enable_mdns=config.mdns,
                relay=config.relay,
                public_addrs=config.public_addrs,
            )
        except (IdentityError, TransportStartError) as exc:
            raise NodeStartError(str(exc)) from None
        print(f"swarm node {identity.peer_id} starting", flush=True)
        engines = await trio.to_thread.run_sync(_load_engines, config, on_loaded, on_bytes)
        try:
            await _serve(config, engines, identity, transport)
        finally:
            for engine in engines:
                engine.close()
            (config.data_dir / STATE_FILE).unlink(missing_ok=True)


def _open_ledger(data_dir: Path, challenge_file: Path | None) -> Ledger:
    """The ledger under the open network's rules, or with the operator's own challenge questions under
    rules naming them: the ledger of a cluster of one's own, which other networks' nodes refuse."""
    try:
        bank = challenge_bank(challenge_file)
    except DatasetError as exc:
        raise NodeStartError(f"no challenge questions: {exc}") from None
    try:
        return Ledger(data_dir / "ledger" / "ledger.db", Rules(challenge_bank=bank.digest), bank=bank)
    except (sqlite3.Error, OSError) as exc:
        raise NodeStartError(
            f"can't open the ledger in {data_dir / 'ledger'}: {exc} "
            "(move that directory aside to start afresh: the node pulls the ledger from its peers)"
        ) from None


async def _serve(config: NodeConfig, engines: list[Engine], identity: Identity, transport: Transport) -> None:
    metrics = NodeMetrics()
    metrics.watch_transport(transport.counters)
    metrics.watch_relaying(transport)
    accel = AccelConfig(enabled=config.accel, exploration=config.accel_exploration, lossy=config.accel_lossy)
    try:
        accelerator = Accelerator(config.data_dir, accel)
    except (sqlite3.Error, OSError) as exc:
        raise NodeStartError(
            f"can't open the acceleration history in {config.data_dir / 'accel'}: {exc}"
        ) from None
    hosted = {
        e.info.name: HostedModel(
            e,
            metrics,
            max_waiting=config.max_waiting,
            price_per_token=m.price_per_token,
            accelerator=accelerator,
        )
        for e, m in zip(engines, config.models, strict=True)
    }
    router = Router(config.data_dir)
    ledger_service = (
        LedgerService(identity, transport, _open_ledger(config.data_dir, config.challenge_file))
        if config.ledger
        else None
    )
    admission = Admission(
        ServePolicy.of(config),
        ledger_service.speaks if ledger_service else None,
        transport.counters.refused,
    )
    network = NetworkService(
        transport,
        hosted,
        announce_interval=config.announce_interval,
        router=router,
        ledger=ledger_service,
        admission=admission,
    )

    def judges() -> list[str]:
        """Every node that hosts a model may judge, this one and peers in the table, those with a say in
        the round's domain (the round's `may_judge`)."""
        return [identity.peer_id, *(e.info.peer_id for e in network.table.peers() if e.info.models)]

    watch = Watch(EventBus(), hosted, metrics, round_provenance, ledger=ledger_service, network=network)
    rounds = RoundService(
        identity,
        transport,
        hosted,
        judges,
        weights=ledger_service.weight if ledger_service else lambda peer, domain: 1.0,
        may_judge=ledger_service.may_judge if ledger_service else lambda peer, domain: True,
        recorder=ledger_service.record_round if ledger_service else None,
        observer=watch.on_round,
        config=RoundConfig(judge_reading=config.judge_reading),
        admission=admission,
    )
    state = NodeState(
        hosted, metrics, config.api_keys, network, router, rounds, ledger_service, accelerator, watch
    )
    app = create_app(state, bind=config.host, max_request_bytes=config.max_request_bytes)
    hyper = hypercorn.config.Config()
    host = f"[{config.host}]" if ":" in config.host else config.host
    hyper.bind = [f"{host}:{config.port}"]
    hyper.accesslog = None
    hyper.graceful_timeout = 5
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        for model in hosted.values():
            model.attach(nursery)
        nursery.start_soon(_stop_on_signal, shutdown)
        try:
            await nursery.start(transport.run)
        except TransportStartError as exc:
            raise NodeStartError(str(exc)) from None
        await nursery.start(network.run)
        await nursery.start(accelerator.run)
        await nursery.start(watch.run)
        if ledger_service is not None:
            await nursery.start(ledger_service.run)
            challenge = ChallengeConfig(interval_s=config.challenge_interval)
            challenges = ChallengeService(
                rounds, ledger_service, lambda: network.table, challenge, transport=transport
            )
            state.challenges = challenges
            await nursery.start(challenges.run)

        async def serve_http(task_status: trio.TaskStatus[list[str]]) -> None:
            await hypercorn.trio.serve(app, hyper, shutdown_trigger=shutdown.wait, task_status=task_status)
            nursery.cancel_scope.cancel()  # HTTP has drained: the network and the engines stop with it

        try:
            binds = await nursery.start(serve_http)
        except OSError as exc:
            raise NodeStartError(f"can't listen on {config.host}:{config.port}: {exc.strerror}") from None
        url = binds[0]
        network.http_url = url
        _write_state(config, url, list(hosted), transport)
        served = ", ".join(f"{m.name} ({m.info.backend})" for m in hosted.values())
        print(f"swarm node {transport.peer_id} ready at {url} serving {served}", flush=True)
        print(f"peers can join through {transport.listen_addrs[0]}", flush=True)
        if config.relay:
            print("serving as a relay (Circuit Relay v2) for peers behind NAT", flush=True)
        nursery.start_soon(_report_reachability, transport)
        if not loopback(config.host) and not config.api_keys:
            log.warning("listening on %s with no API key: anyone who can reach it can use it", config.host)
        await shutdown.wait()
        watch.bus.close()  # the live streams end now rather than hold the graceful shutdown to its end
        nursery.cancel_scope.deadline = trio.current_time() + hyper.graceful_timeout + 1
    if ledger_service is not None:
        ledger_service.ledger.close()
    accelerator.close()


class _Stderr(logging.StreamHandler[TextIO]):
    """Writes each record to sys.stderr as it is then, so a progress display that takes stderr over while
    the models load (the CLI's bars) shows log lines above itself instead of through itself."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        """StreamHandler sets the stream it was given; the property above is the one that counts."""


def main(config: NodeConfig, on_loaded: Loaded = _ignore, on_bytes: Progress | None = None) -> int:
    """`swarm node start`, with run_node's progress callbacks."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=[_Stderr()]
    )
    try:
        trio.run(run_node, config, on_loaded, on_bytes)
    except (NodeStartError, BaseExceptionGroup) as exc:
        leaves = exception_leaves(exc)
        if not all(isinstance(leaf, NodeStartError) for leaf in leaves):
            raise
        for leaf in leaves:
            print(f"error: {leaf}", file=sys.stderr)
        return 1
    return 0
