"""The peer network's own costs, on real node processes over libp2p on loopback.

    python -m bench.network [--converge-nodes 10] [--count 200] [--nat | --nat-only]

Prints: round-trip time and requests/s between two node processes for 1 KB
and 64 KB messages; the time for a 10-node testnet to converge (every peer
table complete); and a forwarded vs a direct request to the same model in
the same run (the forwarding overhead on a real model).

With --nat (as root, with ip, nft and tc), the same across real NATs built in
network namespaces (testnet/netns.py): a relay on the public segment, home A
behind a NAT that keeps ports (hosting the model), B behind another such NAT,
C behind one that randomises ports. Rows for the direct path (B to the relay),
the hole-punched one (B to A) and the relayed one (C to A): round trip p50/p95
and tokens/s forwarded over it as a ratio of a request to A itself; then the
time from a node's start to its reservation on the relay, and from B first
seeing A (through the relay) to a punched direct connection.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import started
from swarm.progress import Bars, waiting
from testnet.netns import RELAY_IP, NsNode, Topology, skip_reason, wait_for
from testnet.testnet import Testnet

MODEL = "smollm2-135m-instruct"
OTHER = "gemma3-270m"


def _generate(url: str, model: str, max_tokens: int) -> tuple[float, int]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Describe the sea."}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
    }
    started = time.perf_counter()
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300)
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["usage"]["completion_tokens"]


def round_trips(net: Testnet, count: int) -> None:
    a, b = net.nodes[0], net.nodes[1]
    print(f"round trips {a.name} -> {b.name} over libp2p (Noise + yamux), {count} sequential requests each")
    print(f"{'size':>8} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8}")
    for size in (1024, 65536):
        with waiting(f"{count} round trips of {size} bytes"):  # timed by the node, in one request
            body = httpx.post(
                f"{a.url}/v1/peers/{b.peer_id}/ping", params={"size": size, "count": count}, timeout=600
            ).json()
        times = sorted(body["rtt_ms"])
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"{size:>8} {statistics.median(times):>8.2f} {p95:>8.2f} {body['requests_per_second']:>8.0f}")


def forwarding(net: Testnet, rounds: int, max_tokens: int) -> None:
    gateway, host = net.nodes[0], net.nodes[1]
    model = host.models[0]
    _generate(host.url, model, 4)
    _generate(gateway.url, model, 4)
    direct, forwarded = [], []
    with Bars(transient=True) as bars:
        bars.update("direct and forwarded pairs", 0, rounds)
        for n in range(rounds):
            direct.append(_generate(host.url, model, max_tokens))
            forwarded.append(_generate(gateway.url, model, max_tokens))
            bars.update("direct and forwarded pairs", n + 1, rounds)
    d_time = statistics.median(t for t, _ in direct)
    f_time = statistics.median(t for t, _ in forwarded)
    d_rate = sum(n for _, n in direct) / sum(t for t, _ in direct)
    f_rate = sum(n for _, n in forwarded) / sum(t for t, _ in forwarded)
    print(
        f"\nforwarded vs direct, {model} on {host.name}, {max_tokens} tokens, "
        f"{rounds} alternating requests each"
    )
    print(f"{'path':>10} {'p50 s':>7} {'tok/s':>7}")
    print(f"{'direct':>10} {d_time:>7.3f} {d_rate:>7.1f}")
    print(f"{'forwarded':>10} {f_time:>7.3f} {f_rate:>7.1f}")
    print(
        f"forwarding adds {1000 * (f_time - d_time):.0f} ms per request (p50); "
        f"throughput ratio {f_rate / d_rate:.3f}"
    )


def convergence(nodes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        net = Testnet(nodes=nodes, models=[MODEL], directory=Path(tmp))
        launched = time.perf_counter()
        with started(net):
            total = time.perf_counter() - launched
            print(
                f"\n{nodes}-node testnet: every peer table complete {net.converged_in:.2f} s after the last "
                f"node answered its health check ({total:.1f} s from launch, model loading included)"
            )


RETRIES = 5
FAILED: dict[str, int] = {}  # namespace -> requests that failed and were asked again


def _log_time(node: NsNode, text: str) -> float:
    """When `text` first appears in the node's log (its lines start with the logging time)."""
    for line in node.process.log_path.read_text(errors="replace").splitlines():
        if text in line and line[:4].isdigit():
            return time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) + int(line[20:23]) / 1000
    raise LookupError(f"{text!r} is not in {node.process.log_path}")


def _chat_rate(node: NsNode, max_tokens: int) -> tuple[float, int]:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Describe the sea."}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
    }
    for _ in range(RETRIES):
        started_at = time.perf_counter()
        status, text = node.post("/v1/chat/completions", body)
        if status == 200:
            return time.perf_counter() - started_at, json.loads(text)["usage"]["completion_tokens"]
        # A starved machine can drop a peer from the table for a beat: counted, then asked again.
        FAILED[node.ns] = FAILED.get(node.ns, 0) + 1
        time.sleep(2.0)
    raise RuntimeError(f"request from {node.ns} failed {RETRIES} times: {text}")


def _path(node: NsNode, other: NsNode) -> str | None:
    entry = node.peer(other.peer_id)
    return entry and entry.get("path")


def nat(count: int, rounds: int, max_tokens: int) -> None:
    reason = skip_reason()
    if reason is not None:
        print(f"\nacross NATs: not measured here ({reason})")
        return
    dummy = ("--backend", "openai", "--url", "http://127.0.0.1:9/v1")  # hosts nothing anyone asks for
    with tempfile.TemporaryDirectory() as tmp, Topology(3, fully_random=frozenset({3})) as topology:
        root = Path(tmp)
        relay = NsNode(topology, topology.pub, RELAY_IP, root / "relay", "--relay", *dummy, "--model", "r")
        nodes = [relay]
        try:
            with waiting("the relay and three homes behind NATs starting"):
                relay.launch().wait_ready()
                boot = ("--bootstrap", relay.multiaddr)
                a = NsNode(
                    topology, topology.home(1), topology.home_ip(1), root / "a", "--model", MODEL, *boot
                )
                b = NsNode(
                    topology, topology.home(2), topology.home_ip(2), root / "b", *dummy, "--model", "b", *boot
                )
                c = NsNode(
                    topology, topology.home(3), topology.home_ip(3), root / "c", *dummy, "--model", "c", *boot
                )
                nodes += [a, b, c]
                for home in (a, b, c):
                    home.launch()
                for home in (a, b, c):
                    home.wait_ready()
                seen = wait_for(lambda: _path(b, a), 120, "B connected to A") and time.monotonic()
                punched = (
                    wait_for(lambda: _path(b, a) == "direct", 180, "a punched hole") and time.monotonic()
                )
            paths = [("direct", b, relay), ("punched", b, a), ("relayed", c, a)]
            delay = (
                f"netem delay {topology.delay_ms} ms per NAT"
                if topology.delay_ms
                else "no netem in this kernel"
            )
            print(f"\nacross NATs (netns; NATs drop new inbound; {delay}), {count} pings of 1 KB")
            _chat_rate(a, 4)
            local = [_chat_rate(a, max_tokens) for _ in range(rounds)]
            local_rate = sum(n for _, n in local) / sum(t for t, _ in local)
            print(f"{'path':>20} {'p50 ms':>8} {'p95 ms':>8} {'tok/s':>7} {'vs A itself':>11}")
            print(f"{'A itself':>20} {'-':>8} {'-':>8} {local_rate:>7.1f} {1:>11.3f}")
            for name, source, target in paths:
                if target is a:
                    _chat_rate(source, 4)  # connects C through the relay; its NAT randomises ports: no punch
                status, text = source.post(f"/v1/peers/{target.peer_id}/ping?size=1024&count={count}", {})
                if status != 200:  # a loaded machine can starve a path past the ping's 5 s: say so, go on
                    print(f"{name:>20} failed: {json.loads(text)['error']['message']}")
                    continue
                times = sorted(json.loads(text)["rtt_ms"])
                p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                if target is a:
                    runs = [_chat_rate(source, max_tokens) for _ in range(rounds)]
                    rate = sum(n for _, n in runs) / sum(t for t, _ in runs)
                    rated = f"{rate:>7.1f} {rate / local_rate:>11.3f}"
                else:
                    rated = f"{'-':>7} {'-':>11}"
                name = f"{name} ({_path(source, target)})"  # the path the requests took, as the node says
                print(f"{name:>20} {statistics.median(times):>8.2f} {p95:>8.2f} {rated}")
            for home in (a, b, c):
                after = _log_time(home, "reachable through relay") - _log_time(home, "p2p listening on")
                print(f"{home.ns}: reachable through the relay {after:.2f} s after its p2p start")
            print(f"B to A: a punched direct connection {punched - seen:.2f} s after B first saw A")
            print(f"requests that failed and were asked again: {FAILED or 'none'}")
        except AssertionError:
            for node in nodes:
                print(f"--- {node.ns}: {node.process.log()[-1500:]}")
            raise
        finally:
            for node in nodes:
                node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200, help="requests per message size")
    parser.add_argument("--converge-nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8, help="forwarded/direct request pairs")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--nat", action="store_true", help="also measure across NATs in network namespaces")
    parser.add_argument("--nat-only", action="store_true", help="only the measurements across NATs")
    args = parser.parse_args()
    if args.nat_only:
        nat(args.count, args.rounds, args.max_tokens)
        return
    with (
        tempfile.TemporaryDirectory() as tmp,
        started(Testnet(nodes=2, models=[OTHER, MODEL], directory=Path(tmp))) as net,
    ):
        round_trips(net, args.count)
        forwarding(net, args.rounds, args.max_tokens)
    convergence(args.converge_nodes)
    if args.nat:
        nat(args.count, args.rounds, args.max_tokens)


if __name__ == "__main__":
    main()
