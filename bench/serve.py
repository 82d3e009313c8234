"""Node overhead: the same prompts through the raw engine and through a node's HTTP API, in one run.

    python -m bench.serve [--model smollm2-135m-instruct] [--parallel 4] [--max-tokens 64] [--rounds 2]

Both paths run the same engine settings and greedy decoding, so they generate
the same tokens; rounds alternate engine and node to spread the machine's
noise over both. Prints tokens/s of each path and their ratio, time to first
token and latency percentiles at 1, 4 and 16 concurrent clients.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import running
from core.records import GenerationRequest, Message
from node.catalog import resolve
from node.engines.base import EngineSpec
from node.engines.llamacpp import LlamaCppEngine
from swarm.progress import Bars
from testnet.process import NodeProcess

PROMPTS = [
    "Explain what a hash table is.",
    "Write a short poem about the sea.",
    "What are the causes of inflation?",
    "Describe how a bicycle works.",
    "Give three tips for learning a language.",
    "Why is the sky blue?",
    "Summarise the plot of a detective story.",
    "How do vaccines train the immune system?",
]


@dataclass
class Sample:
    ttft: float
    latency: float
    tokens: int


@dataclass
class Batch:
    samples: list[Sample]
    wall: float

    @property
    def tokens_per_second(self) -> float:
        return _rate([self])


def _rate(batches: list[Batch]) -> float:
    return sum(s.tokens for b in batches for s in b.samples) / sum(b.wall for b in batches)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def engine_request(engine: LlamaCppEngine, prompt: str, max_tokens: int) -> Sample:
    started = time.perf_counter()
    first: list[float] = []

    def sink(text: str) -> bool:
        if not first:
            first.append(time.perf_counter())
        return False

    request = GenerationRequest(
        engine.info.name, messages=(Message("user", prompt),), max_tokens=max_tokens, temperature=0.0
    )
    generation = engine.stream(request, sink)
    done = time.perf_counter()
    return Sample((first[0] if first else done) - started, done - started, generation.usage.completion_tokens)


def node_request(http: httpx.Client, url: str, model: str, prompt: str, max_tokens: int) -> Sample:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            if first is None and any(c.get("delta", {}).get("content") for c in event["choices"]):
                first = time.perf_counter()
            if event.get("usage"):
                tokens = event["usage"]["completion_tokens"]
    done = time.perf_counter()
    return Sample((first or done) - started, done - started, tokens)


def run_batch(send: Callable[[str], Sample], clients: int, requests: int) -> Batch:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(requests)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        samples = list(pool.map(send, prompts))
    return Batch(samples, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--parallel", type=int, default=4, help="engine slots, the same on both paths")
    parser.add_argument(
        "--threads", type=int, default=None, help="engine threads (default: all cores but one)"
    )
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--clients", default="1,4,16")
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    context = 1024

    resolved = resolve(args.model)
    engine = LlamaCppEngine(
        EngineSpec(
            resolved.name,
            str(resolved.path),
            chat=resolved.chat,
            context_length=context,
            parallel=args.parallel,
        ),
        threads=args.threads,
    )
    threads = ["--threads", str(args.threads)] if args.threads else []
    with (
        tempfile.TemporaryDirectory() as tmp,
        httpx.Client(timeout=600) as http,
        running(
            NodeProcess(
                Path(tmp) / "node",
                "--model",
                args.model,
                "--context-length",
                str(context),
                "--parallel",
                str(args.parallel),
                "--max-waiting",
                "256",
                *threads,
            ),
            f"starting a node serving {args.model}",
        ) as node,
        Bars(transient=True, timing=True) as bars,  # timing: the engine runs in this process
    ):
        paths: dict[str, Callable[[str], Sample]] = {
            "engine": lambda p: engine_request(engine, p, args.max_tokens),
            "node": lambda p: node_request(http, node.url, resolved.name, p, args.max_tokens),
        }
        for send in paths.values():
            send("Hello.")  # warm up both paths before measuring
        print(
            f"model {resolved.name} (llamacpp, {args.parallel} slots, {engine.threads} threads), "
            f"{args.max_tokens} tokens per request, "
            f"greedy, {args.rounds} rounds alternating which path goes first"
        )
        print(
            f"{'clients':>7} {'path':>6} {'reqs':>5} {'tok/s':>8} {'ratio':>6} {'rounds':>11} "
            f"{'ttft p50':>9} {'ttft p95':>9} {'lat p50':>8} {'lat p95':>8}"
        )
        for clients in levels:
            requests = max(len(PROMPTS), 2 * clients)
            batches: dict[str, list[Batch]] = {name: [] for name in paths}
            row = f"rounds at concurrency {clients}"
            bars.update(row, 0, args.rounds)
            for round_ in range(args.rounds):
                order = list(paths) if round_ % 2 == 0 else list(reversed(paths))
                for name in order:
                    batches[name].append(run_batch(paths[name], clients, requests))
                bars.update(row, round_ + 1, args.rounds)
            engine_rate = _rate(batches["engine"])
            for name, runs in batches.items():
                samples = [s for b in runs for s in b.samples]
                rate = _rate(runs)
                ttft = [s.ttft for s in samples]
                latency = [s.latency for s in samples]
                if name == "engine":
                    ratio, spread = "1", ""
                else:
                    per_round = [
                        n.tokens_per_second / e.tokens_per_second
                        for n, e in zip(runs, batches["engine"], strict=True)
                    ]
                    ratio, spread = f"{rate / engine_rate:.3f}", f"{min(per_round):.2f}-{max(per_round):.2f}"
                print(
                    f"{clients:>7} {name:>6} {len(samples):>5} {rate:>8.1f} {ratio:>6} {spread:>11} "
                    f"{statistics.median(ttft) * 1000:>7.0f}ms {_percentile(ttft, 0.95) * 1000:>7.0f}ms "
                    f"{statistics.median(latency):>7.2f}s {_percentile(latency, 0.95):>7.2f}s"
                )
    engine.close()


if __name__ == "__main__":
    main()
