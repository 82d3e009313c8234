"""The peer network's own costs, on real node processes over libp2p on loopback.

    python -m bench.network [--converge-nodes 10] [--count 200]

Prints: round-trip time and requests/s between two node processes for 1 KB
and 64 KB messages; the time for a 10-node testnet to converge (every peer
table complete); and a forwarded vs a direct request to the same model in
the same run (the forwarding overhead on a real model).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.harness import started
from swarm.progress import Bars, waiting
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200, help="requests per message size")
    parser.add_argument("--converge-nodes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=8, help="forwarded/direct request pairs")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        started(Testnet(nodes=2, models=[OTHER, MODEL], directory=Path(tmp))) as net,
    ):
        round_trips(net, args.count)
        forwarding(net, args.rounds, args.max_tokens)
    convergence(args.converge_nodes)


if __name__ == "__main__":
    main()
