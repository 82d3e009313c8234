"""Does the swarm stay a swarm? A real testnet with challenges on, questions of mixed topics, and attackers.

    python -m bench.soak [--minutes 30] [--interval 15] [--window 5] [--challenge-interval 60]

Honest nodes: the offline models, two of them hosting the same one
(smollm2-135m-instruct twice, gemma3-270m, qwen2.5-coder-0.5b-instruct). Attackers are real
node processes too, over the real transport, whose model is a stub HTTP server (the openai
backend) answering as the attack does:
  random    answers a random option letter (or a random word), and judges at random;
  copycat   always answers "A" (the commonest answer a copycat can give without seeing others':
            commit and reveal hides them) and, as a judge, always votes A: the lazy judge too;
  sybil     three identities answering at random, one operator.
Colluding judges are not run here (bench.attacks simulates them).

One question is asked every `--interval` seconds, at most two at a time, of the model
`swarm` in consensus mode, through two honest gateways in turn, its topic drawn among civics
(free answers), medmcqa, logiqa (four options) and HumanEval (code), from their held-out parts.
Printed every `--window` minutes: peers holding a say per domain (and whether the domain is
open: under bootstrap rules), the share of rounds with at least 3 answers and with every
chosen expert answering, the influence share (the weight of its votes over all votes' weight)
of each honest peer and of each attacker group, the Gini of the influence over all peers, and
the consensus accuracy (the winning answer graded against the data set; code only where the
sandbox runs). Say changes are printed as they happen.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from routing.calibration import MAX_TOKENS
from routing.datasets import Item, load, split
from routing.grading import grade
from routing.sandbox import SandboxUnavailable
from testnet.process import NodeProcess
from testnet.testnet import Testnet, say_changes, say_holders

HONEST = ["smollm2-135m-instruct", "smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"]
ATTACKERS = {"random": ["random"], "copycat": ["copycat"], "sybil": ["sybil-1", "sybil-2", "sybil-3"]}
TOPICS = ("civics", "medmcqa", "logiqa", "humaneval")
CODE_TOKENS = 160  # HumanEval bodies are short; 512 would make each code round minutes on 2 cores
GATEWAYS = (0, 2)  # the honest nodes questions go through, in turn (each loads the embedder)
WORDS = ["yes", "no", "Paris", "1776", "the president", "water", "blue", "seven"]


def attacker(style: str, seed: int) -> Callable[[str], str]:
    """What an attacker's stub model says to a prompt (a question, or a judge's task)."""
    rng = random.Random(seed)
    if style == "copycat":
        return lambda prompt: "A"
    return lambda prompt: rng.choice(["A", "B", "C", "D", *WORDS])


@contextmanager
def stub_server(answer: Callable[[str], str]) -> Iterator[str]:
    """An OpenAI-compatible server on loopback whose model says `answer(the last message or prompt)`;
    yields its base URL (the openai backend's --url)."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            return

        def _send(self, body: dict[str, Any], status: int = 200) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:
            self._send({"data": []} if self.path.endswith("/models") else {}, 200)

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            messages = request.get("messages")
            prompt = str(messages[-1]["content"] if messages else request.get("prompt"))
            with lock:
                text = answer(prompt)
            usage = {
                "prompt_tokens": len(prompt) // 4,
                "completion_tokens": 1,
                "total_tokens": len(prompt) // 4 + 1,
            }
            if request.get("stream"):
                chat = self.path.endswith("/chat/completions")
                said = {"delta": {"role": "assistant", "content": text}} if chat else {"text": text}
                done = {"delta": {}} if chat else {"text": ""}
                events = [
                    {"id": "stub", "choices": [{"index": 0, **said, "finish_reason": None}]},
                    {
                        "id": "stub",
                        "choices": [{"index": 0, **done, "finish_reason": "stop"}],
                        "usage": usage,
                    },
                ]
                raw = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(raw.encode())))
                self.end_headers()
                self.wfile.write(raw.encode())
                return
            if self.path.endswith("/chat/completions"):
                choice = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            else:
                choice = {"index": 0, "text": text, "finish_reason": "stop"}
            self._send({"id": "stub", "object": "chat.completion", "choices": [choice], "usage": usage})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()


@dataclass
class Round:
    at: float
    topic: str
    answers: int
    chosen: int
    weights: dict[str, float]
    correct: bool | None
    error: str | None = None


@dataclass
class Window:
    rounds: list[Round] = field(default_factory=list)
    say: dict[str, list[str]] = field(default_factory=dict)
    open: dict[str, bool] = field(default_factory=dict)


def ask(url: str, item: Item) -> dict[str, Any]:
    tokens = CODE_TOKENS if item.kind == "code" else MAX_TOKENS[item.kind]
    body = {
        "model": "swarm",
        "messages": [{"role": m.role, "content": m.content} for m in item.messages],
        "max_tokens": tokens,
        "temperature": 0.0,
        "swarm": {"mode": "consensus"},
    }
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=900)
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
    return response.json()


def graded(item: Item, text: str) -> bool | None:
    try:
        return grade(item, text)
    except SandboxUnavailable:
        return None


def gini(values: list[float]) -> float:
    """0: everyone holds the same; 1: one holds everything."""
    xs = sorted(values)
    n, total = len(xs), sum(xs)
    if n == 0 or total == 0:
        return 0.0
    return sum((2 * i - n + 1) * x for i, x in enumerate(xs)) / (n * total)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between questions")
    parser.add_argument("--window", type=float, default=5.0, help="minutes per printed row")
    parser.add_argument("--challenge-interval", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-attackers", action="store_true")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    questions = {t: split(load(t))[1] for t in TOPICS}
    directory = Path(tempfile.mkdtemp(prefix="swarm-soak-"))
    net = Testnet(
        len(HONEST),
        HONEST,
        directory,
        challenge_interval=args.challenge_interval,
        start_timeout=600,
    )
    print(f"starting {len(HONEST)} honest nodes in {directory} ...", flush=True)
    net.up()
    names = {n.peer_id: f"{n.name}:{n.models[0]}" for n in net.nodes}
    group = {n.peer_id: "honest" for n in net.nodes}
    attackers: list[NodeProcess] = []
    stubs = []
    try:
        if not args.no_attackers:
            for kind, models in ATTACKERS.items():
                for i, model in enumerate(models):
                    stub = stub_server(attacker(kind, args.seed * 100 + len(stubs)))
                    url = stub.__enter__()
                    stubs.append(stub)
                    process = NodeProcess(
                        directory / f"{kind}-{i}",
                        "--model", model, "--backend", "openai", "--url", url,
                        "--bootstrap", net.nodes[0].multiaddr,
                        "--announce-interval", "2",
                        "--challenge-interval", str(args.challenge_interval),
                    )  # fmt: skip
                    process.start(120)
                    attackers.append(process)
                    peer = json.loads((process.data_dir / "node.json").read_text())["peer_id"]
                    names[peer], group[peer] = f"{kind}-{i}", kind
            print(f"started {len(attackers)} attacker nodes", flush=True)
        run(args, rng, net, questions, names, group)
    finally:
        for process in attackers:
            process.stop()
        for stub in stubs:
            stub.__exit__(None, None, None)
        net.down()


def run(
    args: argparse.Namespace,
    rng: random.Random,
    net: Testnet,
    questions: dict[str, list[Item]],
    names: dict[str, str],
    group: dict[str, str],
) -> None:
    start = time.monotonic()
    end = start + args.minutes * 60
    windows: dict[int, Window] = defaultdict(Window)
    lock = threading.Lock()
    in_flight = threading.Semaphore(2)
    gateways = [net.nodes[i].url for i in GATEWAYS]
    for url in gateways:  # the first question loads the embedder and the domains (not counted)
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
            ask(url, questions["civics"][0])
    print(f"gateways warm after {time.monotonic() - start:.0f} s; questions start", flush=True)
    start = time.monotonic()
    end = start + args.minutes * 60
    held: dict[str, set[str]] = {}

    def one(index: int) -> None:
        try:
            topic = TOPICS[index % len(TOPICS)]
            item = rng.choice(questions[topic])
            url = gateways[index % len(gateways)]
            at = time.monotonic() - start
            try:
                reply = ask(url, item)
            except (httpx.HTTPError, RuntimeError) as exc:
                record = Round(at, topic, 0, 0, {}, False, str(exc))
            else:
                report = reply.get("swarm") or {}
                weights: dict[str, float] = Counter()
                for judge in report.get("judges", []):
                    weights[judge["peer_id"]] += judge["weight"]
                chosen = len(report.get("routing", {}).get("selection", {}).get("chosen", []))
                text = reply["choices"][0]["message"]["content"]
                record = Round(
                    at, topic, len(report.get("candidates", [])), chosen, dict(weights), graded(item, text)
                )
            with lock:
                windows[int(at // (args.window * 60))].rounds.append(record)
            what = (
                record.error or f"{record.answers} answers of {record.chosen} chosen, right: {record.correct}"
            )
            print(f"[{at / 60:5.1f} min] {topic}: {what}", flush=True)
        finally:
            in_flight.release()

    def watch_say() -> None:
        while time.monotonic() < end:
            try:
                holders, open_ = say_holders(gateways[0])
            except (httpx.HTTPError, KeyError, ValueError):
                time.sleep(10)
                continue
            at = time.monotonic() - start
            for line in say_changes(held, holders, names):
                print(f"[{at / 60:5.1f} min] {line}", flush=True)
            held.clear()
            held.update(holders)
            with lock:
                w = windows[int(at // (args.window * 60))]
                w.say, w.open = {d: sorted(p) for d, p in holders.items()}, open_
            time.sleep(10)

    watcher = threading.Thread(target=watch_say, daemon=True)
    watcher.start()
    threads = []
    index = 0
    while time.monotonic() < end:
        in_flight.acquire()
        thread = threading.Thread(target=one, args=(index,), daemon=True)
        thread.start()
        threads.append(thread)
        index += 1
        time.sleep(args.interval)
    for thread in threads:
        thread.join(timeout=300)
    watcher.join(timeout=30)
    table(windows, names, group, args.window)


def table(windows: dict[int, Window], names: dict[str, str], group: dict[str, str], minutes: float) -> None:
    honest = sorted(p for p, g in group.items() if g == "honest")
    groups = sorted({g for g in group.values() if g != "honest"})
    print()
    print(
        f"{'minutes':>9} {'rounds':>6} {'errors':>6} {'>=3 ans':>7} {'all ans':>7} {'acc':>5} {'gini':>5}"
        "  say per domain"
    )
    for key in sorted(windows):
        w = windows[key]
        ok = [r for r in w.rounds if r.error is None]
        total = Counter()
        for r in ok:
            for peer, weight in r.weights.items():
                total[peer] += weight
        weight_sum = sum(total.values()) or 1.0
        three = sum(r.answers >= 3 for r in ok) / len(ok) if ok else 0.0
        full = sum(r.answers >= r.chosen for r in ok) / len(ok) if ok else 0.0
        gradable = [r for r in ok if r.correct is not None]
        acc = sum(bool(r.correct) for r in gradable) / len(gradable) if gradable else 0.0
        says = ", ".join(f"{d} {len(p)}{' (open)' if w.open.get(d) else ''}" for d, p in w.say.items())
        span = f"{key * minutes:g}-{(key + 1) * minutes:g}"
        print(
            f"{span:>9} {len(w.rounds):6} {len(w.rounds) - len(ok):6} {three:7.0%} {full:7.0%} {acc:5.0%} "
            f"{gini([total[p] for p in group]):5.2f}  {says}"
        )
        shares = [f"{names[p]} {total[p] / weight_sum:.0%}" for p in honest]
        shares += [f"{g} {sum(total[p] for p in group if group[p] == g) / weight_sum:.0%}" for g in groups]
        print(f"{'':>9} influence: " + ", ".join(shares))
        by_topic = Counter(r.topic for r in gradable)
        right = Counter(r.topic for r in gradable if r.correct)
        print(
            f"{'':>9} accuracy: " + ", ".join(f"{t} {right[t]}/{by_topic[t]}" for t in TOPICS if by_topic[t])
        )


if __name__ == "__main__":
    main()
