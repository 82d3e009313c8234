"""What the ledger costs on a real testnet: rounds per minute with it on and off, and catching up.

Two 3-node testnets run side by side, one started with `--no-ledger`; rounds
go to each in turn, one at a time, so both see the same machine load. Neither
challenges (the ledger's own cost is measured, not the challenges' model
time). Then the ledger-on testnet gets a node that missed 1,000 entries: one
node is killed, its ledger deleted, the entries (real signed rounds, made
here) written into another node's ledger while it is down, and the killed
node is restarted; the clock runs from its restart until it holds the same
ledger head as the others.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.harness import started
from consensus import Ledger, from_wire
from core.identity import Identity
from core.statements import commitment_digest, sign
from swarm.progress import Bars
from testnet.testnet import Testnet

QUESTION = "What is the capital of Italy? Answer in one word."
ROUNDS = 6
CATCH_UP_ENTRIES = 1000


@dataclass(frozen=True)
class LedgerCost:
    seconds_on: list[float]
    seconds_off: list[float]
    catch_up_s: float
    restart_s: float  # from launching the killed node to its being ready (model load included)
    entries: int

    @property
    def rounds_per_minute(self) -> tuple[float, float]:
        return 60 / statistics.mean(self.seconds_on), 60 / statistics.mean(self.seconds_off)


def synthetic_entries(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n real entries (signed rounds among five made-up peers, after the challenges that give them a
    say), as wire dicts in the order they were made."""
    rng = random.Random(seed)
    peers = [Identity.generate() for _ in range(5)]
    start = time.time() - 3 * n
    made = iter(range(10 * n))
    ledger = Ledger(clock=lambda: start + next(made))
    item, question = next(iter(ledger.bank.items.items()))
    right = question.answers[0]
    for i, peer in enumerate(peers):
        challenger = peers[i - 1]
        rid = f"c{i}"
        digest = commitment_digest(rid, "m", "s", right)
        asked = {"round": rid, "model": "m", "gateway": challenger.peer_id}
        answer = {
            "item": item,
            "correct": True,
            "commitment": sign(peer, "commitment", {**asked, "digest": digest}).to_wire(),
            "reveal": sign(peer, "reveal", {**asked, "answer": right, "salt": "s"}).to_wire(),
        }
        ledger.append(
            challenger,
            "challenge",
            {"challenge": rid, "peer": peer.peer_id, "model": "m", "answers": [answer]},
        )
    while len(ledger) < n:
        rid = f"r{len(ledger)}"
        gateway, *others = rng.sample(peers, 5)
        answerers, judges = others[:3], others[3:]
        candidates = []
        for cid, peer in enumerate(answerers):
            digest = commitment_digest(rid, f"m{cid}", "s", f"answer {cid}")
            committed = {"round": rid, "model": f"m{cid}", "digest": digest, "gateway": gateway.peer_id}
            commitment = sign(peer, "commitment", committed)
            candidates.append(
                {"cid": cid, "model": f"m{cid}", "peer": peer.peer_id, "commitment": commitment.to_wire()}
            )
        pairs = [(0, 1), (1, 2), (0, 2)]
        ballots = []
        for judge in judges:
            picks = [[a, b, rng.choice("AB")] for a, b in pairs]
            ballot = {"round": rid, "gateway": gateway.peer_id, "votes": picks, "verdicts": {}}
            ballots.append(sign(judge, "ballot", ballot).to_wire())
        record = {
            "round": rid,
            "mode": "consensus",
            "candidates": candidates,
            "ballots": ballots,
            "winner": 0,
            "domain": "general",
            "reported": {"chosen": {}, "missed": {}, "malformed": {}},
        }
        ledger.append(gateway, "round", record)
    return list(ledger.stored())


def _round(url: str) -> float:
    body = {"model": "swarm", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8}
    started = time.perf_counter()
    reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=600)
    reply.raise_for_status()
    return time.perf_counter() - started


def _head(url: str) -> tuple[str, int]:
    view = httpx.get(f"{url}/v1/ledger?limit=0", timeout=30).json()
    return view["head"], view["entries"]


def measure(rounds: int = ROUNDS, entries: int = CATCH_UP_ENTRIES) -> LedgerCost:
    wires = synthetic_entries(entries)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        no_ledger = ("--context-length", "1024", "--no-ledger")
        with (
            started(Testnet(3, directory=root / "on")) as on,
            started(Testnet(3, directory=root / "off", extra_args=no_ledger)) as off,
            Bars(transient=True) as bars,
        ):
            seconds_on, seconds_off = [], []
            row = "rounds with the ledger off and on"
            bars.update(row, 0, rounds)
            for n in range(rounds):
                seconds_off.append(_round(off.nodes[0].url))
                seconds_on.append(_round(on.nodes[0].url))
                bars.update(row, n + 1, rounds)
            # A node that missed every entry: killed, its ledger gone, entries made while it was down.
            missing, holder = on.processes[2], on.processes[1]
            for process in (missing, holder):
                assert process.process is not None
                process.process.kill()
                process.process.wait()
            shutil.rmtree(missing.data_dir / "ledger")
            stored = Ledger(holder.data_dir / "ledger" / "ledger.db")
            stored.add_many(from_wire(w) for w in wires)
            stored.close()
            spread = f"a node restarted with {len(wires)} entries more, spreading them"
            bars.update(spread, 0, None)
            holder.start(180)
            deadline = time.monotonic() + 300
            while (target := _head(holder.url)) != _head(on.nodes[0].url) or target[1] < len(wires):
                if time.monotonic() > deadline:
                    raise RuntimeError("the network did not converge on the written entries")
                time.sleep(0.2)
            bars.update(spread, 1, 1)
            bars.update("the node that missed them restarting", 0, None)
            launched = time.perf_counter()
            missing.start(180)
            ready = time.perf_counter()
            bars.update("the node that missed them restarting", 1, 1)
            while (held := _head(missing.url)) != target:
                bars.update("entries it caught up on", held[1], target[1])
                if time.perf_counter() - ready > 300:
                    raise RuntimeError(
                        f"the restarted node did not catch up: {_head(missing.url)} vs {target}"
                    )
                time.sleep(0.05)
            caught_up = time.perf_counter()
    return LedgerCost(seconds_on, seconds_off, caught_up - ready, ready - launched, target[1])


def print_cost(cost: LedgerCost) -> None:
    on, off = cost.rounds_per_minute
    print(
        "\nOn a real 3-node testnet (smollm2, gemma3, qwen2.5-coder; consensus rounds of 8 tokens, in turn)"
    )
    print(f"{'ledger':8} {'rounds':>6} {'mean s':>8} {'min s':>7} {'rounds/min':>11}")
    for name, seconds in (("on", cost.seconds_on), ("off", cost.seconds_off)):
        mean = statistics.mean(seconds)
        print(f"{name:8} {len(seconds):6d} {mean:8.2f} {min(seconds):7.2f} {60 / mean:11.2f}")
    print(f"on/off rounds per minute: {on / off:.3f}")
    print(
        f"catch-up: a restarted node that missed {cost.entries} entries holds the same head "
        f"{cost.catch_up_s:.2f} s after it is ready ({cost.restart_s:.1f} s to restart, model load included)"
    )
