"""The `swarm` command line: `swarm node start`, `swarm ask`, `swarm models`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

from core.records import SWARM_MODEL
from node import config as node_config

from . import progress
from .client import DEFAULT_URL, Client
from .errors import SwarmError
from .types import RoundReport, RouteReport, SwarmOptions


def _add_node_start(commands: argparse._SubParsersAction) -> None:
    node = commands.add_parser("node", help="run and manage a node").add_subparsers(
        dest="node_command", required=True
    )
    accel = node.add_parser("accel", help="what the node learned about accelerating its models")
    accel.add_argument("--json", action="store_true", help="machine-readable")
    _add_client_options(accel)
    profile = node.add_parser(
        "profile", help="run a built-in task mix through every acceleration method: a first history"
    )
    profile.add_argument("--per-kind", type=int, default=2, help="tasks of each kind (default 2)")
    profile.add_argument("--seed", type=int, default=0)
    profile.add_argument("--models", help="comma-separated models to profile (default: all on the node)")
    profile.add_argument("--kinds", help="comma-separated task kinds (default: all of them)")
    _add_client_options(profile)
    start = node.add_parser("start", help="start a node that serves models over an OpenAI-compatible API")
    start.add_argument("--config", type=Path, help="TOML config file (flags override it)")
    start.add_argument(
        "--model",
        action="append",
        dest="models",
        metavar="MODEL",
        help="catalog name (smollm2-135m-instruct, gemma3-270m, qwen2.5-coder-0.5b-instruct), "
        "a .gguf path or an HF folder; repeat to host several",
    )
    start.add_argument(
        "--backend", choices=node_config.BACKENDS, help="engine for the --model options (default auto)"
    )
    start.add_argument("--url", help="openai backend: base URL of the server to use")
    start.add_argument("--context-length", type=int, help="tokens of context per request (default 2048)")
    start.add_argument("--parallel", type=int, help="requests a model generates at once (default 1)")
    start.add_argument(
        "--price-per-token",
        type=float,
        help="what a token in or out of these models costs, announced to peers (default 0)",
    )
    start.add_argument("--threads", type=int, help="CPU threads per model (default: all cores but one)")
    start.add_argument("--host", help="address to listen on (default 127.0.0.1: this machine only)")
    start.add_argument(
        "--port", type=int, help=f"HTTP port (default {node_config.DEFAULT_PORT}; 0 picks a free one)"
    )
    start.add_argument("--data-dir", type=Path, help="the node's state directory (default ~/.swarm/node)")
    start.add_argument(
        "--cache-dir", type=Path, help="where assembled model files are kept (default ~/.cache/swarm)"
    )
    start.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="require this bearer key on /v1 (repeatable; also SWARM_API_KEY)",
    )
    start.add_argument(
        "--max-waiting", type=int, help="requests a model queues before answering 429 (default 64)"
    )
    start.add_argument("--p2p-host", help="address libp2p listens on (default 127.0.0.1)")
    start.add_argument(
        "--p2p-port",
        type=int,
        help=f"libp2p port (default {node_config.DEFAULT_P2P_PORT}; 0 picks a free one)",
    )
    start.add_argument(
        "--bootstrap",
        action="append",
        metavar="MULTIADDR",
        help="a peer to join the network through, /ip4/.../tcp/.../p2p/<id> (repeatable)",
    )
    start.add_argument("--mdns", action="store_true", default=None, help="find peers on the LAN by mDNS")
    start.add_argument(
        "--relay",
        action="store_true",
        default=None,
        help="serve Circuit Relay v2 to peers behind NAT (for a publicly reachable node: a bootstrap)",
    )
    start.add_argument(
        "--public-addr",
        action="append",
        dest="public_addrs",
        metavar="MULTIADDR",
        help="an address peers reach this node at that it does not listen on, such as a router's forwarded "
        "port: /ip4/203.0.113.5/tcp/8421 (repeatable)",
    )
    start.add_argument("--announce-interval", type=float, help="seconds between announcements (default 5)")
    start.add_argument(
        "--no-accel",
        dest="accel",
        action="store_false",
        default=None,
        help="run every request with the engine's defaults: no acceleration learning",
    )
    start.add_argument(
        "--accel-exploration",
        type=float,
        help="share of requests that try a method the learner is less sure of (default 0.1)",
    )
    start.add_argument(
        "--accel-lossy",
        action="store_true",
        default=None,
        help="let the learner pick methods that change greedy output (a quantised KV cache...)",
    )
    start.add_argument(
        "--no-ledger",
        dest="ledger",
        action="store_false",
        default=None,
        help="keep no ledger and no reputations: every node has an equal say (a cluster you trust)",
    )
    start.add_argument(
        "--challenge-interval",
        type=float,
        help="seconds between proof-of-capability challenges of peers (default 60; 0: none)",
    )
    start.add_argument(
        "--challenge-file",
        type=Path,
        help="challenge questions of your own, JSON Lines, for a cluster you trust: the reputation rules "
        "name them, so the nodes that share the file form a network of their own (default: the civics bank)",
    )
    start.add_argument(
        "--serve-peers",
        choices=node_config.SERVE_POLICIES,
        help="whose requests the models serve over libp2p: say (default: peers with a say in the ledger, "
        "every peer while the network bootstraps or with --no-ledger), allow-list, or any",
    )
    start.add_argument(
        "--serve-allow",
        action="append",
        metavar="PEER_ID",
        help="a peer --serve-peers allow-list serves (repeatable)",
    )
    start.add_argument(
        "--serve-allow-file", type=Path, help="more peers allow-list serves, one peer id a line"
    )
    start.add_argument(
        "--peer-requests-per-minute", type=int, help="requests a peer may ask in a minute (default 60)"
    )
    start.add_argument(
        "--peer-tokens-per-minute",
        type=int,
        help="tokens a peer's requests may generate in a minute, counted by their max_tokens (default 20000)",
    )
    start.add_argument(
        "--peer-concurrency", type=int, help="a peer's requests running or queued at once (default 4)"
    )


def _node_config(args: argparse.Namespace) -> node_config.NodeConfig:
    models = None
    if args.models:
        per_model = {
            "backend": args.backend or "auto",
            "url": args.url,
            "context_length": args.context_length,
            "parallel": args.parallel,
            "price_per_token": args.price_per_token,
            "threads": args.threads,
        }
        models = tuple(
            node_config.model_from_table(
                {"model": m, **{k: v for k, v in per_model.items() if v is not None}}
            )
            for m in args.models
        )
    api_keys = list(args.api_keys or [])
    if os.environ.get("SWARM_API_KEY"):
        api_keys.append(os.environ["SWARM_API_KEY"])
    return node_config.load(
        args.config,
        models=models,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        cache_dir=args.cache_dir,
        api_keys=api_keys or None,
        max_waiting=args.max_waiting,
        p2p_host=args.p2p_host,
        p2p_port=args.p2p_port,
        bootstrap=args.bootstrap,
        relay=args.relay,
        public_addrs=args.public_addrs,
        mdns=args.mdns,
        announce_interval=args.announce_interval,
        accel=args.accel,
        accel_exploration=args.accel_exploration,
        accel_lossy=args.accel_lossy,
        ledger=args.ledger,
        challenge_interval=args.challenge_interval,
        challenge_file=args.challenge_file,
        serve_peers=args.serve_peers,
        serve_allow=args.serve_allow,
        serve_allow_file=args.serve_allow_file,
        peer_requests_per_minute=args.peer_requests_per_minute,
        peer_tokens_per_minute=args.peer_tokens_per_minute,
        peer_concurrency=args.peer_concurrency,
    )


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", default=os.environ.get("SWARM_NODE", DEFAULT_URL), help="node URL")
    parser.add_argument(
        "--api-key", default=os.environ.get("SWARM_API_KEY"), help="bearer key, if the node needs one"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="total seconds for the call")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swarm", description="Decentralized swarm inference.")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_node_start(commands)

    ask = commands.add_parser("ask", help="ask a node a question")
    ask.add_argument("question")
    ask.add_argument("--model", help="model to ask (default: the node's own first model)")
    ask.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    ask.add_argument("--max-tokens", type=int, default=256)
    ask.add_argument("--temperature", type=float, default=0.0)
    ask.add_argument(
        "--mode",
        choices=("consensus", "route", "vote"),
        help="model swarm: peers rank the experts' answers (default), the best expert answers, or majority",
    )
    ask.add_argument("--experts", type=int, help="model swarm: most experts to ask")
    ask.add_argument("--max-latency", type=float, help="model swarm: seconds the answer may take at most")
    ask.add_argument("--max-cost", type=float, help="model swarm: what the answer may cost at most")
    _add_client_options(ask)

    models = commands.add_parser("models", help="list every model in the network and where it runs")
    _add_client_options(models)

    peers = commands.add_parser("peers", help="print a node's peer table")
    _add_client_options(peers)

    calibrate = commands.add_parser(
        "calibrate",
        help="ask every model in the network calibration questions, then install the routing table built "
        "from the answers on the node (it spreads to the peers)",
    )
    calibrate.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        required=True,
        metavar="NAME",
        help="civics, logiqa, medmcqa or humaneval (repeatable)",
    )
    calibrate.add_argument(
        "--limit", type=int, help="questions per dataset (default: its whole calibration part)"
    )
    calibrate.add_argument(
        "--clusters", type=int, help="K of the k-means (default: 16, fewer for few questions)"
    )
    calibrate.add_argument("--models", help="comma-separated models to calibrate (default: every model)")
    calibrate.add_argument("--seed", type=int, default=0, help="fixes the calibration/held-out split")
    calibrate.add_argument(
        "--store",
        type=Path,
        help="answers file, reused to resume (default ~/.swarm/calibration/results.jsonl)",
    )
    calibrate.add_argument("--concurrency", type=int, default=2, help="questions in flight at once")
    _add_client_options(calibrate)

    ledger = commands.add_parser("ledger", help="a node's ledger: its head, latest entries, reputations")
    ledger.add_argument(
        "action",
        nargs="?",
        choices=("verify", "challenge-me"),
        help="verify: fetch every entry and check every signature and chain link here (exit 1 on failure); "
        "challenge-me: ask the node's peers to challenge it now (a newcomer's way to a say)",
    )
    ledger.add_argument("--json", action="store_true", help="machine-readable, with the head digest")
    ledger.add_argument("--limit", type=int, default=10, help="latest entries to show (default 10)")
    ledger.add_argument(
        "--challenge-file",
        type=Path,
        help="verify: the challenge questions of the node's own, if it was started with some "
        "(default: the civics bank)",
    )
    _add_client_options(ledger)

    testnet = commands.add_parser("testnet", help="a local multi-node network on this machine")
    actions = testnet.add_subparsers(dest="testnet_command", required=True)
    up = actions.add_parser(
        "up", help="start N node processes on loopback and wait until they all see each other"
    )
    up.add_argument("--nodes", type=int, default=3)
    up.add_argument(
        "--models", help="comma-separated models, one per node, cycled (default: the three offline ones)"
    )
    up.add_argument(
        "--challenge-interval",
        type=float,
        default=30.0,
        help="seconds between the nodes' proof-of-capability challenges of each other (default 30; 0: none)",
    )
    up.add_argument(
        "--watch",
        action="store_true",
        help="then print each peer's gain or loss of its say in a domain as it happens, until Ctrl-C "
        "(the nodes keep running)",
    )
    status = actions.add_parser("status", help="the running testnet's nodes")
    status.add_argument(
        "--json", action="store_true", help="machine-readable: each node's url, peer_id, models"
    )
    down = actions.add_parser("down", help="stop every node of the testnet")
    for action in (up, status, down):
        action.add_argument("--dir", type=Path, help="the testnet's directory (default ~/.swarm/testnet)")
    return parser


def _start_node(config: node_config.NodeConfig) -> int:
    from node.daemon import main as run_daemon

    with progress.Bars() as bars:

        def loaded(done: int, total: int) -> None:
            bars.update("models loaded", done, total)
            if done == total:
                bars.close()  # serving from here on: what the node writes is its log

        return run_daemon(config, loaded, partial(bars.update, unit="bytes"))


def _ask(args: argparse.Namespace) -> int:
    swarm_flags = (args.mode, args.experts, args.max_latency, args.max_cost)
    budget = any(flag is not None for flag in swarm_flags)
    if budget and args.model != SWARM_MODEL:
        raise node_config.ConfigError(
            "--mode, --experts, --max-latency and --max-cost apply to --model swarm"
        )
    with Client(args.node, api_key=args.api_key, timeout=args.timeout) as client:
        options = {"model": args.model, "max_tokens": args.max_tokens, "temperature": args.temperature}
        if budget:
            options["swarm"] = SwarmOptions(
                mode=args.mode or "consensus",
                experts=args.experts,
                max_latency_s=args.max_latency,
                max_cost=args.max_cost,
            )
        route = None
        if args.stream:
            for chunk in client.stream_chat(args.question, **options):
                route = route or chunk.swarm
                print(chunk.text, end="", flush=True)
            print()
        else:
            asked = "the swarm" if args.model == SWARM_MODEL else args.model or "the node"
            with progress.waiting(f"asking {asked}"):
                answer = client.chat(args.question, **options)
            route = answer.swarm
            print(answer.text.strip())
            if answer.usage:
                usage = answer.usage
                print(
                    f"-- {answer.model}, {usage.completion_tokens} tokens, finish: {answer.finish_reason}",
                    file=sys.stderr,
                )
    if isinstance(route, RouteReport):
        _print_route(route)
    elif isinstance(route, RoundReport):
        _print_round(route)
    return 0


def _print_round(report: RoundReport) -> None:
    """Under the answer (on stderr): the candidates, how the judges ranked them, and where time went."""
    flag = f" (degraded: {report.degraded})" if report.degraded else ""
    confidence = f", confidence {report.confidence:.2f}" if report.confidence is not None else ""
    print(f"-- {report.mode} round {report.round_id[:12]}{confidence}{flag}", file=sys.stderr)
    print(f"   {'ANSWER':6} {'MODEL':30} {'NODE':10} {'BT':>6} {'GOOD':>6}", file=sys.stderr)
    for c in report.candidates:
        mark = "*" if c.id == report.candidate else " "
        bt = f"{c.bt_score:.2f}" if c.bt_score is not None else "-"
        good = f"{c.good}/{c.checks}" if c.checks else "-"
        print(f" {mark} {c.id:6} {c.model:30} {c.peer_id[-8:]:10} {bt:>6} {good:>6}", file=sys.stderr)
    print(
        f"   {len(report.votes)} votes from {len(report.judges)} judges; "
        + ", ".join(f"{phase} {ms:.0f} ms" for phase, ms in report.timings_ms.items()),
        file=sys.stderr,
    )
    for miss in report.missed:
        print(f"   missed: {miss['peer_id'][-8:]} in {miss['phase']}: {miss['reason']}", file=sys.stderr)


def _print_route(route: RouteReport) -> None:
    """Under the answer (on stderr, so the answer alone can be piped on): who answered and why."""
    table = route.table_version or "none (uncalibrated: priors only)"
    print(f"-- routed in {route.decision_ms:.1f} ms with table {table}", file=sys.stderr)
    print(f"   {'EXPERT':30} {'SCORE':>6} {'P(RIGHT)':>8} {'LATENCY':>8}  WHY", file=sys.stderr)
    for e in route.experts:
        latency = f"{e.predicted_latency_s:.1f}s" if e.predicted_latency_s is not None else "?"
        mark = "*" if e.model == route.model else " "
        print(
            f" {mark} {e.model:30} {e.score:>6.2f} {e.quality:>8.1%} {latency:>8}  {e.reason}",
            file=sys.stderr,
        )


def _models(args: argparse.Namespace) -> int:
    with Client(args.node, api_key=args.api_key, timeout=args.timeout) as client:
        cards = client.models()
    print(f"{'MODEL':32} {'BACKEND':12} {'CONTEXT':>8} {'TOK/S':>7} HOSTS")
    for card in cards:
        rate = f"{card.tokens_per_second:.1f}" if card.tokens_per_second else "-"
        backend, context = card.backend or "-", card.context_length or "-"
        hosts = ", ".join(("this node" if h["local"] else str(h["peer_id"])[-8:]) for h in card.hosts)
        if card.id == SWARM_MODEL:
            hosts = "the network as one model (--model swarm)"
        print(f"{card.id:32} {backend:12} {context:>8} {rate:>7} {hosts or '-'}")
    return 0


def _peers(args: argparse.Namespace) -> int:
    with Client(args.node, api_key=args.api_key, timeout=args.timeout) as client:
        view = client.peers()
        health = client.health()
    rows = ([view.self] if view.self else []) + list(view.peers)
    if health.reachability is not None:
        print(f"this node: {health.reachability['advice']}")
    print(f"{'PEER':54} {'STATE':6} {'RTT':>7} {'PATH':8} {'HTTP':26} MODELS (running/waiting)")
    for peer in rows:
        rtt = f"{peer.rtt_ms:.1f}ms" if peer.rtt_ms is not None else "-"
        path = peer.path or "-"
        models = ", ".join(
            f"{m} ({peer.load.get(m, {}).get('running', 0)}/{peer.load.get(m, {}).get('waiting', 0)})"
            for m in peer.models
        )
        print(f"{peer.peer_id:54} {peer.state:6} {rtt:>7} {path:8} {peer.http_url or '-':26} {models or '-'}")
    return 0


def _accel(args: argparse.Namespace) -> int:
    with Client(args.node, api_key=args.api_key, timeout=args.timeout) as client:
        summary = client.accel()
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    state = "on" if summary["enabled"] else "off"
    print(f"acceleration learning {state}; {summary['records']} requests in the history", end="")
    print(f"; exploring {summary['exploration']:.0%}{', lossy methods allowed' if summary['lossy'] else ''}")
    print(f"\n{'MODEL':30} {'TASK KIND':22} {'PICKS':18} {'SPEED-UP':>8} {'RECORDS':>8}")
    for row in summary["learned"]:
        print(
            f"{row['model']:30} {row['kind']:22} {row['method']:18} {row['expected_speedup']:7.2f}x "
            f"{row['method_records']:>3}/{row['records']:<4}"
        )
    if not summary["learned"]:
        print("(nothing learned yet: serve some requests, or run `swarm node profile`)")
    return 0


def _profile(args: argparse.Namespace) -> int:
    models = args.models.split(",") if args.models else None
    kinds = args.kinds.split(",") if args.kinds else None
    # The node runs the whole profile inside this one request: all there is to show is the time.
    with (
        Client(args.node, api_key=args.api_key, timeout=args.timeout) as client,
        progress.waiting("profiling the acceleration methods"),
    ):
        report = client.profile(per_kind=args.per_kind, seed=args.seed, models=models, kinds=kinds)
    print(f"{'MODEL':30} {'METHOD':18} {'SPEED-UP':>8} {'SAME OUTPUT':>12}  LOSSLESS")
    for row in report["methods"]:
        speedup = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
        claim = {None: "no (claims none)", True: "yes, holds", False: "claimed, BROKEN"}[row["claim_holds"]]
        print(
            f"{row['model']:30} {row['method']:18} {speedup:>8} {row['matched']:>5}/{row['runs']:<6}  {claim}"
        )
    print(f"-- {report['seconds']:.0f} s; {report['records']} requests in the node's history")
    return 0


def _ledger(args: argparse.Namespace) -> int:
    with Client(args.node, api_key=args.api_key, timeout=args.timeout) as client:
        if args.action == "verify":
            return _verify_ledger(client.ledger_entries(), client.ledger(limit=0), args.challenge_file)
        if args.action == "challenge-me":
            asked = client.ask_to_be_challenged()
            for peer, took in asked.items():
                print(f"{peer:54} {'will challenge it' if took else 'did not take the request'}")
            return 0 if any(asked.values()) else 1
        summary = client.ledger(limit=args.limit)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    phase = " (bootstrapping: nobody has a say yet)" if summary["bootstrapping"] else ""
    print(f"head {summary['head']}  {summary['entries']} entries in {len(summary['chains'])} chains{phase}")
    if summary["waiting"] or summary["rejected"]:
        print(f"{summary['waiting']} waiting for earlier entries, {summary['rejected']} rejected")
    domains = summary.get("domains", {})
    print("\nsay per domain: " + ", ".join(_domain_state(d, s) for d, s in domains.items()))
    print(f"\n{'PEER':54} {'SCORE':>8} " + " ".join(f"{d.upper():>16}" for d in domains))
    for row in summary["reputation"]:
        cells = " ".join(f"{_domain_say(row['domains'][d]):>16}" for d in domains)
        print(f"{row['peer_id']:54} {row['score']:8.3f} {cells}")
    print("(each domain: say or -, then right/asked of the recent challenge answers the test counts)")
    print(f"\n{'WHEN':19} {'GATEWAY':10} {'SEQ':>5} WHAT")
    for e in summary["recent"]:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e["at"]))
        if e["type"] == "round":
            winner = e["winner"][-8:] if e["winner"] else "none"
            what = f"round: {e['candidates']} answers, {e['judges']} judges, won by {winner}"
            what += f", {e['missed']} missed" if e["missed"] else ""
        else:
            what = f"challenge of {e['peer'][-8:]}: {e['right']}/{e['asked']} right"
        print(f"{when:19} {e['gateway'][-8:]:10} {e['seq']:>5} {what}")
    return 0


def _domain_state(domain: str, state: dict[str, Any]) -> str:
    return f"{domain} {state['holders']} holding" + (" (open: bootstrap rules)" if state["open"] else "")


def _domain_say(say: dict[str, Any]) -> str:
    """A peer's say in one domain, in a cell: held (SAY), open to it (open), or none (-), and its test."""
    mark = "SAY" if say["holds"] else "open" if say["say"] else "-"
    return f"{mark} {say['right']:.0f}/{say['asked']:.0f}"


def _verify_ledger(
    entries: list[dict[str, Any]], summary: dict[str, Any], challenge_file: Path | None
) -> int:
    """Check every entry here, not trusting the node: its signatures, evidence, challenge grades and chain
    links, then whether the head the node reports is what the entries give."""
    from consensus import verify as verify_ledger
    from reputation import Rules
    from routing.datasets import DatasetError, challenge_bank

    try:
        bank = challenge_bank(challenge_file)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ledger, failures = verify_ledger(entries, Rules(challenge_bank=bank.digest), bank)
    if ledger.head != summary["head"] and not failures:
        failures.append(f"the node reports head {summary['head']}, its entries give {ledger.head}")
    for failure in failures:
        print(f"FAIL {failure}")
    verdict = "FAILED" if failures else "ok"
    print(f"{len(entries)} entries checked, {len(ledger)} verified; head {ledger.head}: {verdict}")
    return 1 if failures else 0


def _calibrate(args: argparse.Namespace) -> int:
    import trio

    from routing.calibration import CalibrationError
    from routing.datasets import DatasetError

    from . import calibrate

    if args.limit is not None and args.limit < 1:
        raise node_config.ConfigError("--limit must be at least 1")
    try:
        report = trio.run(
            partial(
                calibrate.run,
                args.node,
                args.datasets,
                limit=args.limit,
                store_path=args.store,
                clusters=args.clusters,
                seed=args.seed,
                concurrency=args.concurrency,
                models=args.models.split(",") if args.models else None,
                api_key=args.api_key,
                timeout=args.timeout,
            )
        )
    except (DatasetError, CalibrationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    calibrate.print_report(report)
    return 0


def _testnet(args: argparse.Namespace) -> int:
    from testnet import testnet

    if args.testnet_command == "up":
        models = args.models.split(",") if args.models else None
        net = testnet.Testnet(
            args.nodes, models, args.dir, challenge_interval=args.challenge_interval, accel=True
        )
        print(f"starting {args.nodes} nodes in {net.directory} ...", file=sys.stderr)
        try:
            with progress.Bars() as bars:
                nodes = net.up(bars.update)
        except testnet.NodeStartFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{'NODE':7} {'PEER ID':54} {'HTTP':24} MODELS")
        for node in nodes:
            print(f"{node.name:7} {node.peer_id:54} {node.url:24} {', '.join(node.models)}")
        print(f"state: {net.state_path}; stop with: swarm testnet down", file=sys.stderr)
        if args.watch:
            print("say per domain, as node-0 sees it (Ctrl-C to stop watching):", file=sys.stderr)
            with contextlib.suppress(KeyboardInterrupt):
                testnet.watch_say(nodes)
        return 0
    if args.testnet_command == "status":
        report = testnet.status(args.dir)
        if args.json:
            print(json.dumps(report, indent=2))
        elif not report:
            print("no testnet is running", file=sys.stderr)
        else:
            print(f"{'NODE':7} {'STATE':14} {'PEERS':>5} {'HTTP':24} MODELS")
            for node in report:
                models = ", ".join(node["models"])  # type: ignore[arg-type]
                print(f"{node['name']:7} {node['state']:14} {node['peers']:>5} {node['url']:24} {models}")
        return 0 if report else 1
    stopped = testnet.stop(args.dir)
    print(f"stopped {stopped} node(s)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "node" and args.node_command == "accel":
            return _accel(args)
        if args.command == "node" and args.node_command == "profile":
            return _profile(args)
        if args.command == "node":
            return _start_node(_node_config(args))
        if args.command == "ask":
            return _ask(args)
        if args.command == "peers":
            return _peers(args)
        if args.command == "testnet":
            return _testnet(args)
        if args.command == "calibrate":
            return _calibrate(args)
        if args.command == "ledger":
            return _ledger(args)
        return _models(args)
    except node_config.ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SwarmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
