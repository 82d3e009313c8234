"""A built-in mix of tasks, for a new node's first history (`swarm node profile`) and the benchmark.

The kinds differ in what acceleration can exploit: an edit hands back most of
a long prompt (n-gram and prompt-lookup drafts are accepted), a summary reads
a long prompt and writes little (prompt processing dominates), a short
question or an open request writes text found nowhere in the prompt. Texts
are generated from a seed, so a mix is reproducible and a held-out mix is new.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.records import GenerationRequest, Message

KINDS = ("edit-code", "edit-text", "repeat-list", "summary", "question", "write-code", "open")

_WORDS = [
    "river",
    "stone",
    "market",
    "lantern",
    "harbor",
    "meadow",
    "copper",
    "signal",
    "garden",
    "winter",
    "orchard",
    "ledger",
    "canvas",
    "thunder",
    "willow",
    "beacon",
    "compass",
    "velvet",
    "timber",
    "quarry",
    "falcon",
    "pepper",
    "marble",
    "saddle",
    "violin",
    "anchor",
    "cedar",
    "glacier",
    "parcel",
    "ribbon",
    "tunnel",
    "whisper",
    "candle",
    "meadow",
    "bridge",
    "cobalt",
    "fable",
    "jigsaw",
    "kettle",
]
_VERBS = [
    "holds",
    "carries",
    "follows",
    "guards",
    "finds",
    "paints",
    "measures",
    "gathers",
    "lifts",
    "watches",
    "mends",
    "opens",
]
_FUNCS = [
    "total",
    "average",
    "count_words",
    "clamp",
    "scale",
    "merge_lists",
    "first_even",
    "last_word",
    "join_names",
]
_TOPICS = ["the sea", "a lighthouse", "autumn", "a busy kitchen", "an old map", "a train at night", "bees"]
_CAPITALS = ["France", "Italy", "Spain", "Japan", "Egypt", "Canada", "Kenya", "Peru", "Norway", "Chile"]


@dataclass(frozen=True)
class Task:
    kind: str
    text: str
    max_tokens: int

    def request(self, model: str) -> GenerationRequest:
        return GenerationRequest(
            model=model, messages=(Message("user", self.text),), max_tokens=self.max_tokens, temperature=0.0
        )


def _sentence(rng: random.Random) -> str:
    a, b = rng.sample(_WORDS, 2)
    return f"The {a} {rng.choice(_VERBS)} the {b}."


def _function(rng: random.Random) -> str:
    name, arg = rng.choice(_FUNCS), rng.choice(("items", "values", "names", "xs"))
    lines = [f"def {name}_{rng.randint(1, 99)}({arg}):", "    result = []"]
    for _ in range(rng.randint(3, 6)):
        word = rng.choice(_WORDS)
        lines.append(f"    result.append({arg}.count({word!r}))")
    lines.append("    return result")
    return "\n".join(lines)


def task(kind: str, rng: random.Random) -> Task:
    if kind == "edit-code":
        code = _function(rng)
        return Task(
            kind,
            f"Rename the variable result to output in this code and return the whole code:\n\n{code}",
            128,
        )
    if kind == "edit-text":
        text = " ".join(_sentence(rng) for _ in range(rng.randint(4, 7)))
        return Task(
            kind,
            f"Rewrite this paragraph with every word in lower case, changing nothing else:\n\n{text}",
            96,
        )
    if kind == "repeat-list":
        items = ", ".join(rng.sample(_WORDS, rng.randint(10, 16)))
        return Task(kind, f"Repeat this list exactly, then stop: {items}", 64)
    if kind == "summary":
        text = " ".join(_sentence(rng) for _ in range(rng.randint(12, 20)))
        return Task(kind, f"Summarise this text in one short sentence:\n\n{text}", 24)
    if kind == "question":
        return Task(kind, f"What is the capital of {rng.choice(_CAPITALS)}? Answer in one word.", 8)
    if kind == "write-code":
        return Task(kind, f"Write a Python function {rng.choice(_FUNCS)} with a docstring.", 96)
    if kind == "open":
        return Task(kind, f"Write a short poem about {rng.choice(_TOPICS)}.", 64)
    raise ValueError(f"unknown task kind {kind!r}; known: {', '.join(KINDS)}")


def mix(per_kind: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[Task]:
    """`per_kind` tasks of every kind in `kinds`, interleaved, from `seed`."""
    rng = random.Random(seed)
    return [task(kind, rng) for _ in range(per_kind) for kind in kinds]
