"""The calibration datasets, read from the installed data packages, and the seeded split."""

from __future__ import annotations

import importlib.util
import json
import random
import re
from pathlib import Path

import pytest

from routing import datasets
from routing.datasets import (
    CIVICS_INCOMPLETE,
    CIVICS_UNANSWERABLE,
    DATASETS,
    MC_INSTRUCTION,
    DatasetError,
    Item,
    load,
    split,
)


def evals_file(relative: str) -> Path:
    return Path(importlib.util.find_spec("evals").submodule_search_locations[0]) / "registry/data" / relative


@pytest.fixture(scope="module")
def everything() -> dict[str, list[Item]]:
    return {name: load(name) for name in DATASETS}


def test_counts(everything: dict[str, list[Item]]) -> None:
    # civics: 100 questions less 4 that depend on where you live and 6 with cut-down answer lists;
    # logiqa: its 1354 lines are 677 questions, each twice.
    counts = {name: len(items) for name, items in everything.items()}
    assert counts == {"civics": 90, "logiqa": 677, "medmcqa": 300, "humaneval": 164}
    assert len(evals_file("logiqa/logiqa.jsonl").read_text().splitlines()) == 1354


def test_items_are_well_formed(everything: dict[str, list[Item]]) -> None:
    kinds = {"civics": "qa", "logiqa": "mc", "medmcqa": "mc", "humaneval": "code"}
    for name, items in everything.items():
        assert len({i.id for i in items}) == len(items), name
        for item in items:
            assert (item.dataset, item.kind) == (name, kinds[name])
            assert item.question.strip()
            assert [m.role for m in item.messages] == ["user"]
            assert item.question in item.messages[0].content
            if item.kind == "qa":
                assert item.answers and all(a.strip() for a in item.answers)
            if item.kind == "code":
                assert item.answers == ()
                assert item.code_prefix == item.question
                assert f"def {item.entry_point}(" in item.code_prefix
                assert "def check(candidate)" in item.test


def test_every_multiple_choice_answer_is_one_of_its_four_options(everything: dict[str, list[Item]]) -> None:
    for item in everything["logiqa"] + everything["medmcqa"]:
        options = re.findall(r"^([A-D])\. \S", item.question, re.M)
        assert options == ["A", "B", "C", "D"], item.id
        assert len(item.answers) == 1 and item.answers[0] in options
        assert item.messages[0].content.endswith(MC_INSTRUCTION)
        assert not re.search(r"^([A-D])\. \1\.", item.question, re.M)  # logiqa's doubled labels are gone


def test_medmcqa_relabelling_keeps_the_right_option() -> None:
    rows = [json.loads(line) for line in evals_file("medmcqa/samples.jsonl").read_text().splitlines()]
    items = load("medmcqa")
    assert len(rows) == len(items)
    for row, item in zip(rows, items, strict=True):
        letter, text = row["ideal"].split(") ", 1)
        assert item.answers == (letter.upper(),)
        assert f"\n{letter.upper()}. {text}\n" in item.question + "\n"


def test_first_logiqa_item() -> None:
    item = load("logiqa")[0]
    assert item.answers == ("C",)
    assert "\nC. Li chose to travel by ship.\n" in item.question
    assert "\nQuestion: According to the above statement" in item.question
    assert not item.question.endswith("Answer:")


def test_civics_leaves_out_the_ungradable_questions() -> None:
    ids = {item.id for item in load("civics")}
    assert ids == {str(n) for n in range(1, 101)} - {str(n) for n in CIVICS_UNANSWERABLE | CIVICS_INCOMPLETE}
    first = next(item for item in load("civics") if item.id == "1")
    assert first.question == "What is the supreme law of the land?"
    assert "the Constitution" in first.answers


def test_unknown_dataset_names_the_known_ones() -> None:
    with pytest.raises(DatasetError, match="civics, humaneval, logiqa, medmcqa"):
        load("mmlu")


def test_missing_package_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    without_evals = lambda name: None if name == "evals" else real(name)  # noqa: E731
    monkeypatch.setattr(datasets.importlib.util, "find_spec", without_evals)
    with pytest.raises(DatasetError, match=re.escape("pip install --no-deps evals==3.0.1.post1")):
        load("logiqa")
    assert len(load("civics")) == 90


def pool() -> list[Item]:
    return load("civics") + load("medmcqa") + load("logiqa")


def keys(items: list[Item]) -> set[tuple[str, str]]:
    return {(i.dataset, i.id) for i in items}


def test_split_is_deterministic_disjoint_and_about_the_fraction() -> None:
    items = pool()
    calibration, held_out = split(items, seed=3, held_out=0.3)
    assert (calibration, held_out) == split(items, seed=3, held_out=0.3)
    assert not keys(calibration) & keys(held_out)
    assert keys(calibration) | keys(held_out) == keys(items)
    assert len(held_out) / len(items) == pytest.approx(0.3, abs=0.04)
    assert keys(split(items, seed=4, held_out=0.3)[1]) != keys(held_out)


def test_split_does_not_depend_on_order_or_on_other_items() -> None:
    items = pool()
    _, held_out = split(items, seed=1)
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    assert keys(split(shuffled, seed=1)[1]) == keys(held_out)
    # Adding items never moves the ones already there.
    medmcqa = [i for i in items if i.dataset == "medmcqa"]
    assert keys(split(medmcqa, seed=1)[1]) == keys(held_out) & keys(medmcqa)


def test_split_bounds() -> None:
    items = load("civics")
    assert split(items, held_out=0.0) == (items, [])
    assert split(items, held_out=1.0) == ([], items)
    with pytest.raises(ValueError):
        split(items, held_out=1.5)
