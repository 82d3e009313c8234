"""Does peer ranking pick better answers than majority voting? Real rounds on a real testnet.

    python -m bench.consensus [--datasets civics,medmcqa] [--questions 40] [--node URL]

Each held-out question goes to the model `swarm` once, as a consensus round:
the three offline models answer (commit, reveal), each node judges the pairs
that aren't its own, and weighted Bradley-Terry picks the winner. The same
round's answers then give every baseline, so all of them see the same
answers: each single model (its candidate), the routed single expert (the
candidate of the expert the router ranked first), majority vote over the
three (answers normalised per data set: the accepted answer they match, or
the option letter), and the oracle (right if any candidate is).

The routing table comes from the calibration part of the same data sets
(bench.routing's stored answers, asked here if missing). Prints accuracy with
95% intervals, and wall time per round split by phase, so the protocol's own
overhead shows apart from model time.

    python -m bench.consensus --judge-signal 20 [--datasets civics,medmcqa]

measures the judges instead, in this process and on calibration questions
only (never the held-out part): each offline model answers 20 calibration
questions per data set (graded, stored with the others), and on every pair of
answers of which exactly one is right and neither its own, each model judges
in each reading: text (the letter it writes, parsed), probability (P(A) among
A and B, both orders averaged, and again with its letter prior removed) and
likelihood (which answer it finds likelier, per character). Prints, per judge
and reading, the share of pairs it picked the right answer of (an even
verdict, as the same letter in both orders, counts half), with a 95%
interval, the share where it gave nothing usable, and the weight its record
would earn it (`ranking.reliability`).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import trio

from bench.harness import DEFAULT_STORE, on_network
from bench.routing import Split, collect, evaluate, interval95, load_splits
from core.records import SWARM_MODEL, GenerationRequest, Message
from node import catalog, prompts
from node.engines import readings
from node.engines.base import EngineSpec
from node.engines.llamacpp import LlamaCppEngine
from ranking import ballots, judging
from ranking.majority import majority
from ranking.reliability import Reliability
from ranking.verdicts import both_orders, letter_prior
from routing.calibration import MAX_TOKENS, ResultStore, calibrate
from routing.datasets import Item
from routing.embeddings import MiniLMEmbedder
from routing.grading import final_answer, grade
from swarm.client import AsyncClient
from swarm.progress import Bars, waiting
from swarm.types import RoundReport

PHASES = ("routing", "generation", "commit_reveal", "judging", "aggregation")


async def install_table(url: str, splits: dict[str, Split], args: argparse.Namespace) -> list[str]:
    """Route with a table built from the calibration parts only (answers asked and stored if missing)."""
    calibration = [i for s in splits.values() for i in s.calibration]
    store = ResultStore(args.store)
    models = await collect(url, calibration, store, concurrency=2)
    everything = [i for s in splits.values() for i in (*s.calibration, *s.held_out)]
    with waiting(f"embedding {len(everything)} questions"):  # evaluate() routes held-out ones too
        vectors = MiniLMEmbedder().embed([i.question for i in everything])
    embed = {(i.dataset, i.id): v for i, v in zip(everything, vectors, strict=True)}
    table, _ = evaluate(splits, store.outcomes(), models, embed, None, args.seed)
    async with AsyncClient(url) as client:
        await client.install_routing_table(json.loads(table.to_json()))
    return models


def held_out(splits: dict[str, Split], args: argparse.Namespace) -> list[Item]:
    per_set = max(1, args.questions // len(splits))
    chosen = []
    for split in splits.values():
        items = list(split.held_out)
        random.Random(args.seed).shuffle(items)
        chosen += items[:per_set]
    return chosen


def score_round(item: Item, report: RoundReport, models: list[str]) -> dict[str, float]:
    """Right (1) or wrong (0) for consensus and every baseline, all from this round's answers."""
    by_model = {c.model: c for c in report.candidates}
    right = {c.id: grade(item, c.answer) for c in report.candidates}
    row = {m: float(right[by_model[m].id]) if m in by_model else 0.0 for m in models}
    row["consensus"] = float(right[report.candidate])
    bt_winner = report.raw.get("bt_winner")
    row["BT alone"] = float(right[bt_winner]) if bt_winner else row["consensus"]
    routed = report.routing.model if report.routing else report.model
    row["routed"] = float(right[by_model[routed].id]) if routed in by_model else 0.0
    # As the node's vote mode does: a tie goes to the expert the router ranked higher.
    quality = {e.model: e.quality for e in report.routing.experts} if report.routing else {}
    ordered = sorted(report.candidates, key=lambda c: -quality.get(c.model, 0.0))
    vote = majority([final_answer(item, c.answer) for c in ordered])
    row["majority"] = float(right[ordered[vote.supporters[0]].id]) if vote else 0.0
    row["oracle"] = float(any(right.values()))
    return row


async def run(args: argparse.Namespace, url: str) -> None:
    splits = load_splits(args.datasets.split(","), None, args.seed)
    models = await install_table(url, splits, args)
    items = held_out(splits, args)
    print(f"{len(items)} held-out questions of {args.datasets}, one consensus round each", flush=True)
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    timings: dict[str, list[float]] = defaultdict(list)
    walls, degraded = [], 0
    args.rounds.parent.mkdir(parents=True, exist_ok=True)
    kept = args.rounds.open("w")  # every round's full provenance, for a closer look afterwards
    async with AsyncClient(url, timeout=900) as client, Bars(transient=True) as bars:
        bars.update("consensus rounds", 0, len(items))
        for n, item in enumerate(items, 1):
            started = time.perf_counter()
            answer = await client.chat(
                list(item.messages), model=SWARM_MODEL, max_tokens=MAX_TOKENS[item.kind], temperature=0
            )
            walls.append(time.perf_counter() - started)
            bars.update("consensus rounds", n, len(items))
            report = answer.swarm
            assert isinstance(report, RoundReport)
            kept.write(json.dumps({"dataset": item.dataset, "item": item.id, "swarm": report.raw}) + "\n")
            degraded += report.degraded is not None
            for phase in PHASES:
                timings[phase].append(report.timings_ms.get(phase, 0.0))
            row = score_round(item, report, models)
            rows[item.dataset].append(row)
            rows["all"].append(row)
            if n % 10 == 0 or n == len(items):
                done = rows["all"]
                print(
                    f"  {n}/{len(items)}: consensus {np.mean([r['consensus'] for r in done]):.1%}, "
                    f"majority {np.mean([r['majority'] for r in done]):.1%}",
                    flush=True,
                )
    kept.close()
    columns = ["consensus", "BT alone", "majority", "routed", *models, "oracle"]
    print("\nheld-out accuracy, every column from the same rounds' answers (± is a 95% interval)")
    print(f"{'data set':10} {'n':>4} " + " ".join(f"{c[:14]:>14}" for c in columns))
    for name, group in rows.items():
        cells = []
        for column in columns:
            p = float(np.mean([r[column] for r in group]))
            cells.append(f"{p:>7.1%} ±{interval95(p, len(group)):>4.1%}".rjust(14))
        print(f"{name:10} {len(group):>4} " + " ".join(cells))
    print(
        f"\nrounds: {len(walls)}, degraded: {degraded}; "
        f"wall time per round p50 {statistics.median(walls):.2f} s"
    )
    print(f"{'phase':14} {'p50 ms':>9} {'mean ms':>9} {'share':>7}")
    total = sum(statistics.mean(v) for v in timings.values())
    for phase in PHASES:
        values = timings[phase]
        print(
            f"{phase:14} {statistics.median(values):>9.1f} {statistics.mean(values):>9.1f}"
            f" {statistics.mean(values) / total:>7.1%}"
        )


JUDGES = ("smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct")
READINGS = ("text", "probability", "probability, letter prior removed", "likelihood")
# A pick's credit, "first is better" read as A: an even verdict is worth half, as U is, not nothing.
CREDIT = {"A": 1.0, "B": 0.0, "U": 0.5}


class LocalModel:
    """One offline model in this process, asked as a node would ask it (a base model by a transcript)."""

    def __init__(self, name: str) -> None:
        resolved = catalog.resolve(name)
        self.name, self.chat = name, resolved.chat
        self.engine = LlamaCppEngine(EngineSpec(name, str(resolved.path), chat=resolved.chat), threads=1)

    def request(self, messages: tuple[Message, ...], max_tokens: int) -> GenerationRequest:
        request = GenerationRequest(model=self.name, messages=messages, max_tokens=max_tokens, temperature=0)
        return request if self.chat else prompts.as_completion(request)


def judge_signal(args: argparse.Namespace) -> None:
    splits = load_splits(args.datasets.split(","), None, args.seed)
    items = [i for s in splits.values() for i in s.calibration[: args.judge_signal]]
    models = {name: LocalModel(name) for name in JUDGES}
    store = ResultStore(args.store)

    async def ask(model: str, item: Item, max_tokens: int) -> str:
        local = models[model]
        request = local.request(item.messages, max_tokens)
        return (await trio.to_thread.run_sync(local.engine.generate, request)).text

    trio.run(lambda: calibrate(items, list(models), ask, store))
    answers = {(o.dataset, o.item, o.model): o for o in store.outcomes()}
    # (item, the right answer's model, the wrong one's): every pair of which exactly one is right
    pairs = []
    for item in items:
        graded = [answers[item.dataset, item.id, m] for m in models]
        pairs += [(item, r, w) for r in graded if r.correct for w in graded if not w.correct]
    print(f"{len(items)} calibration questions of {args.datasets}; {len(pairs)} pairs with one right answer")
    credit: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    for judge, local in models.items():
        raw: list[tuple[float, float]] = []  # P(A) with the right answer first, then second
        for item, right, wrong in pairs:
            if judge in (right.model, wrong.model):
                continue
            question = item.question
            texts = []
            for a, b in ((right.answer, wrong.answer), (wrong.answer, right.answer)):
                reply = local.engine.generate(local.request(judging.pairwise_prompt(question, a, b), 8)).text
                texts.append(judging.parse_preference(reply))
            picks = [CREDIT.get(t) if t else None for t in texts]
            if picks[1] is not None:
                picks[1] = 1 - picks[1]
            usable = [p for p in picks if p is not None]
            credit[judge, "text"].append(sum(usable) / len(usable) if usable else None)
            shares = [
                readings.pairwise(
                    local.engine, local.request(judging.pairwise_prompt(question, a, b, tie=False), 1)
                )
                for a, b in ((right.answer, wrong.answer), (wrong.answer, right.answer))
            ]
            if None in shares:
                credit[judge, "probability"].append(None)
            else:
                raw.append((shares[0], shares[1]))
                credit[judge, "probability"].append(CREDIT[ballots.letter(both_orders(*raw[-1]))])
            asked = local.request((Message("user", question),), 1)
            likely = [readings.likelihood(local.engine, asked, t) for t in (right.answer, wrong.answer)]
            credit[judge, "likelihood"].append(
                None if None in likely else float(likely[0] > likely[1])  # type: ignore[operator]
            )
        # PriDe estimates the prior from the judge's own pairs, without their labels
        prior = letter_prior(raw)
        credit[judge, READINGS[2]] = [CREDIT[ballots.letter(both_orders(a, b, prior))] for a, b in raw]
        print(f"  {judge}: letter prior {prior:+.2f} (log-odds of A over B)", flush=True)
    print(
        "\njudge signal: share of pairs (one answer right, neither the judge's) where it picked the right one"
    )
    print(f"{'judge':28} {'reading':34} {'pairs':>5} {'right':>14} {'unusable':>9} {'weight':>7}")
    for (judge, reading), values in sorted(
        credit.items(), key=lambda kv: (kv[0][0], READINGS.index(kv[0][1]))
    ):
        usable = [v for v in values if v is not None]
        p = float(np.mean(usable)) if usable else 0.0
        cell = f"{p:.1%} ±{interval95(p, len(usable)):.1%}" if usable else "-"
        weight = Reliability(len(usable), sum(usable)).weight
        print(
            f"{judge:28} {reading:34} {len(values):>5} {cell:>14} {1 - len(usable) / len(values):>9.1%}"
            f" {weight:>7.2f}"
        )
    for local in models.values():
        local.engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="civics,medmcqa")
    parser.add_argument(
        "--questions", type=int, default=60, help="held-out questions, split over the data sets"
    )
    parser.add_argument("--node", help="an existing node to use instead of starting a testnet")
    parser.add_argument("--store", type=Path, default=DEFAULT_STORE, help="graded answers, reused")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rounds", type=Path, default=Path.home() / ".swarm" / "bench" / "consensus-rounds.jsonl"
    )
    parser.add_argument(
        "--judge-signal",
        type=int,
        metavar="N",
        help="measure the judges on N calibration questions per data set instead (no testnet)",
    )
    args = parser.parse_args()
    if args.judge_signal:
        judge_signal(args)
    else:
        on_network(run, args)


if __name__ == "__main__":
    main()
