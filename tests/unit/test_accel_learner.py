"""The meta-learner on synthetic histories where the fastest method depends on the task: it finds it, far
more often than chance or the best single method; explores at the rate asked, less as methods get tried;
keeps to the allowed methods; and saves and loads exactly."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import stat
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from accel.features import TaskFeatures
from accel.history import Record
from accel.learner import BestOnAverage, Choice, Chooser, GradientBoosting, MetaLearner, RandomChoice

METHODS = ["default", "prompt-lookup-10", "threads-1", "ngram-simple"]


def task(rng: random.Random, *, edit: bool | None = None, prompt_tokens: int | None = None) -> TaskFeatures:
    return TaskFeatures(
        model="m",
        backend="llamacpp",
        prompt_tokens=prompt_tokens or int(math.exp(rng.uniform(math.log(8), math.log(3000)))),
        max_tokens=rng.choice([64, 256, 1024]),
        chat=rng.random() < 0.5,
        code_share=rng.random() * 0.4,
        repetition=rng.random() * 0.25,
        edit_request=rng.random() < 0.3 if edit is None else edit,
        cluster=None,
        concurrency=rng.randrange(3),
        hardware="cpu",
    )


def speed(f: TaskFeatures, method: str) -> float:
    """Tokens/s: prompt lookup doubles edit requests and costs a little elsewhere; one thread wins on short
    prompts and loses on long ones; n-gram decoding is a little slower everywhere."""
    base = 40.0 / (1 + 0.3 * f.concurrency) / (1 + f.prompt_tokens / 4000)
    factor = {
        "default": 1.0,
        "prompt-lookup-10": 2.0 if f.edit_request else 0.93,
        "threads-1": 1.3 if f.prompt_tokens < 100 else 0.8,
        "ngram-simple": 0.95,
    }[method]
    return base * factor


def interacting_speed(f: TaskFeatures, method: str) -> float:
    """As `speed`, but prompt lookup pays only on edit requests with long answers: not additive."""
    if method == "prompt-lookup-10" and f.edit_request and f.max_tokens < 256:
        return speed(f, method) * 0.93 / 2.0
    return speed(f, method)


Speed = Callable[[TaskFeatures, str], float]


def fastest(f: TaskFeatures, truth: Speed = speed) -> str:
    return max(METHODS, key=lambda m: truth(f, m))


def run(f: TaskFeatures, method: str, rng: random.Random, truth: Speed = speed) -> Record:
    tokens_per_s = truth(f, method) * math.exp(rng.gauss(0, 0.15))
    return Record(f, method, 100 / tokens_per_s, 0.1, tokens_per_s, 100, None, 0.0)


def history(n: int, seed: int = 1, truth: Speed = speed) -> list[Record]:
    """Each task run once, with a method drawn at random: a node's history, not a grid of every method."""
    rng = random.Random(seed)
    return [run(task(rng), rng.choice(METHODS), rng, truth) for _ in range(n)]


@pytest.fixture(scope="module")
def trained() -> MetaLearner:
    learner = MetaLearner(METHODS, exploration=0.0)
    learner.fit(history(1200))
    return learner


def accuracy(chooser: Chooser, n: int = 300, truth: Speed = speed) -> float:
    rng = random.Random(99)
    tasks = [task(rng) for _ in range(n)]
    return sum(chooser.choose(f).method == fastest(f, truth) for f in tasks) / n


def test_without_data_the_default_is_chosen_unless_exploring() -> None:
    learner = MetaLearner(METHODS, exploration=0.0)
    f = task(random.Random(0))
    assert learner.choose(f) == Choice("default", 1.0, False, {})
    assert learner.choose(f, allowed=["threads-1", "ngram-simple"]).method == "threads-1"
    assert learner.predict(f) == {} and learner.observations() == 0
    # Data on another model says nothing about this one.
    other = dataclasses.replace(f, model="other")
    assert MetaLearner(METHODS, exploration=0.0).choose(other) == Choice("default", 1.0, False, {})
    # A node starting from nothing still tries the other methods, or it would never learn them.
    curious = MetaLearner(METHODS, exploration=0.5, seed=1)
    picks = [curious.choose(f) for _ in range(400)]
    explored = [c.method for c in picks if c.explored]
    assert 0.4 < len(explored) / len(picks) < 0.6 and "default" not in explored
    assert set(explored) == set(METHODS) - {"default"}
    assert all(c.method == "default" for c in picks if not c.explored)


def test_it_picks_the_fastest_method_per_task_far_more_often_than_the_baselines(trained: MetaLearner) -> None:
    best_on_average, random_choice = BestOnAverage(METHODS), RandomChoice(METHODS, seed=1)
    best_on_average.fit(history(1200))
    meta = accuracy(trained)
    assert meta >= 0.9
    assert meta >= accuracy(best_on_average) + 0.3
    assert meta >= accuracy(random_choice) + 0.4
    rng = random.Random(5)
    assert trained.choose(task(rng, edit=True, prompt_tokens=40)).method == "prompt-lookup-10"
    assert trained.choose(task(rng, edit=True, prompt_tokens=1500)).method == "prompt-lookup-10"
    assert trained.choose(task(rng, edit=False, prompt_tokens=20)).method == "threads-1"
    assert trained.choose(task(rng, edit=False, prompt_tokens=1500)).method == "default"


def test_what_is_not_additive_is_learnt_from_neighbouring_tasks() -> None:
    learner = MetaLearner(METHODS, exploration=0.0)
    learner.fit(history(1200, seed=0, truth=interacting_speed))
    # The regression alone, additive in the features, gets about 0.8 of these right.
    assert accuracy(learner, truth=interacting_speed) >= 0.9
    long_edit = dataclasses.replace(task(random.Random(15), edit=True, prompt_tokens=600), max_tokens=1024)
    short_edit = dataclasses.replace(long_edit, max_tokens=64)
    assert learner.choose(long_edit).expected_speedup > 1.8
    predicted = learner.predict(short_edit)
    assert predicted["prompt-lookup-10"] / predicted["default"] < 1.1  # the truth: 0.93


def test_predictions_and_speedups_follow_the_history(trained: MetaLearner) -> None:
    f = task(random.Random(6), edit=True, prompt_tokens=500)
    predicted = trained.predict(f)
    assert set(predicted) == set(METHODS)
    assert predicted["default"] == pytest.approx(speed(f, "default"), rel=0.15)
    choice = trained.choose(f)
    assert not choice.explored and choice.predicted == predicted
    assert choice.expected_speedup == pytest.approx(2.0, rel=0.15)
    assert choice.expected_speedup == predicted["prompt-lookup-10"] / predicted["default"]


def test_gradient_boosting_baseline_learns_something() -> None:
    boosting = GradientBoosting(METHODS)
    boosting.fit(history(400))
    assert accuracy(boosting, 60) >= 0.5


def test_best_on_average_always_picks_one_method() -> None:
    chooser = BestOnAverage(METHODS)
    chooser.fit(history(600))
    rng = random.Random(3)
    # Prompt lookup's doubling on edit requests outweighs its small loss elsewhere.
    assert {chooser.choose(task(rng)).method for _ in range(50)} == {"prompt-lookup-10"}
    assert chooser.choose(task(rng), allowed=["default", "ngram-simple"]).method == "default"


def test_random_choice_spreads_over_the_allowed_methods() -> None:
    chooser = RandomChoice(METHODS, seed=4)
    rng = random.Random(4)
    counts = Counter(chooser.choose(task(rng), allowed=METHODS[:3]).method for _ in range(600))
    assert set(counts) == set(METHODS[:3]) and min(counts.values()) > 150


def short_questions(per_method: dict[str, int], seed: int = 2) -> list[Record]:
    """Runs on short non-edit prompts ("short question"), plus runs of every method on other kinds."""
    rng = random.Random(seed)
    records = [
        run(task(rng, edit=False, prompt_tokens=20), m, rng) for m, n in per_method.items() for _ in range(n)
    ]
    records += [run(task(rng, edit=False, prompt_tokens=800), m, rng) for m in METHODS for _ in range(30)]
    return records


def explored_share(learner: MetaLearner, draws: int = 1500) -> float:
    rng = random.Random(8)
    choices = [learner.choose(task(rng, edit=False, prompt_tokens=20)) for _ in range(draws)]
    assert all(c.explored == (c.method != max(c.predicted, key=c.predicted.__getitem__)) for c in choices)
    return sum(c.explored for c in choices) / draws


def test_exploration_runs_at_the_rate_asked_then_fades_as_methods_get_tried() -> None:
    untried = MetaLearner(METHODS, exploration=0.2, seed=3)
    untried.fit(short_questions({"default": 60}))
    assert untried.choose(task(random.Random(0), edit=False, prompt_tokens=20)).predicted  # data: predicts
    assert 0.17 <= explored_share(untried) <= 0.23
    tried = MetaLearner(METHODS, exploration=0.2, seed=3)
    tried.fit(short_questions(dict.fromkeys(METHODS, 99)))  # every method 99 runs: 0.2 / sqrt(100)
    assert 0.01 <= explored_share(tried) <= 0.035
    never = MetaLearner(METHODS, exploration=0.0)
    never.fit(short_questions({"default": 60}))
    assert explored_share(never) == 0.0


def test_exploration_tries_the_least_tried_method_first() -> None:
    learner = MetaLearner([*METHODS, "never-run"], exploration=1.0, seed=5)
    learner.fit(short_questions({"default": 40, "prompt-lookup-10": 5, "threads-1": 40, "ngram-simple": 40}))
    f = task(random.Random(1), edit=False, prompt_tokens=20)
    # Never observed: predicted as the default, so never picked but for exploration, which goes to it first.
    assert learner.predict(f)["never-run"] == learner.predict(f)["default"]
    assert {learner.choose(f).method for _ in range(50)} == {"never-run"}
    without = MetaLearner(METHODS, exploration=1.0, seed=5)
    without.fit(short_questions({"default": 40, "prompt-lookup-10": 5, "threads-1": 40, "ngram-simple": 40}))
    choices = [without.choose(f) for _ in range(200)]
    assert {c.method for c in choices if c.explored} == {"prompt-lookup-10"}  # 5 runs, the others 40
    assert {c.method for c in choices if not c.explored} == {"threads-1"}
    assert 0.3 < sum(c.explored for c in choices) / 200 < 0.52  # 1 / sqrt(1 + 5)


def test_allowed_methods_are_honoured(trained: MetaLearner) -> None:
    rng = random.Random(9)
    edit = task(rng, edit=True, prompt_tokens=300)
    assert trained.choose(edit).method == "prompt-lookup-10"
    choice = trained.choose(edit, allowed=["default", "ngram-simple"])
    assert choice.method == "default" and choice.expected_speedup == 1.0
    exploring = MetaLearner(METHODS, exploration=1.0)
    exploring.fit(history(300))
    assert {exploring.choose(task(rng), allowed=["default", "threads-1"]).method for _ in range(200)} == {
        "default",
        "threads-1",
    }
    with pytest.raises(ValueError, match="none of the allowed"):
        trained.choose(edit, allowed=["no-such-method"])


def test_thin_data_falls_back_to_mean_speedups() -> None:
    rng = random.Random(10)
    records = [
        Record(task(rng), m, 1.0, None, s, 50, True, 0.0)
        for m, s in [("default", 10.0), ("ngram-simple", 12.0)]
        for _ in range(6)
    ]
    learner = MetaLearner(METHODS, exploration=0.0)
    learner.fit(records)
    for _ in range(20):
        choice = learner.choose(task(rng))
        assert choice.method == "ngram-simple"
        assert 1.1 < choice.expected_speedup < 1.2  # shrunk a little toward no speed-up


def test_records_of_unknown_methods_or_no_speed_are_left_out() -> None:
    rng = random.Random(11)
    good = [run(task(rng), "default", rng) for _ in range(5)]
    bad = [Record(task(rng), "retired", 1.0, None, 30.0, 30, None, 0.0)]
    bad += [Record(task(rng), "default", 1.0, None, speed, 0, None, 0.0) for speed in (0.0, math.inf)]
    learner = MetaLearner(METHODS)
    learner.fit(good + bad)
    assert learner.observations() == 5


def test_fitting_is_deterministic() -> None:
    records = history(400, seed=12)
    a, b = MetaLearner(METHODS, exploration=0.3, seed=7), MetaLearner(METHODS, exploration=0.3, seed=7)
    a.fit(records)
    b.fit(records)
    rng = random.Random(13)
    tasks = [task(rng) for _ in range(100)]
    assert [a.choose(f) for f in tasks] == [b.choose(f) for f in tasks]


def test_summary_per_kind(trained: MetaLearner) -> None:
    rows = {row.kind: row for row in trained.summary()}
    assert rows["edit, long prompt"].method == rows["edit, short prompt"].method == "prompt-lookup-10"
    assert rows["edit, long prompt"].expected_speedup == pytest.approx(2.0, rel=0.15)
    assert rows["short question"].method == "threads-1"
    assert rows["long prompt"].method == "default" and rows["long prompt"].expected_speedup == 1.0
    assert sum(row.records for row in rows.values()) == trained.observations() == 1200
    assert all(0 < row.method_records < row.records for row in rows.values())
    assert {(row.model, row.backend) for row in rows.values()} == {("m", "llamacpp")}


def test_save_and_load_give_identical_predictions(trained: MetaLearner, tmp_path: Path) -> None:
    path = tmp_path / "accel" / "learner.json"
    trained.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["learner.json"]
    loaded = MetaLearner.load(path)
    rng = random.Random(14)
    for f in [task(rng) for _ in range(50)]:
        assert loaded.predict(f) == trained.predict(f)
        assert loaded.choose(f) == trained.choose(f)
    assert loaded.summary() == trained.summary()
    assert loaded.observations() == trained.observations()
    assert (loaded.methods, loaded.default, loaded.exploration) == (METHODS, "default", 0.0)


def test_a_corrupt_file_raises_value_error(trained: MetaLearner, tmp_path: Path) -> None:
    path = tmp_path / "learner.json"
    trained.save(path)
    text = path.read_text()
    data = json.loads(text)
    short_coef = json.loads(text)
    short_coef["models"][0]["coef"].pop()
    bad_method = json.loads(text)
    bad_method["models"][0]["neighbour_method"][0] = 17
    for corrupt in [
        text[: len(text) // 2],
        "",
        json.dumps({**data, "format": 99}),
        json.dumps({k: v for k, v in data.items() if k != "methods"}),
        json.dumps(short_coef),
        json.dumps(bad_method),
    ]:
        path.write_text(corrupt)
        with pytest.raises(ValueError):
            MetaLearner.load(path)
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError):
        MetaLearner.load(path)


def test_methods_are_checked() -> None:
    with pytest.raises(ValueError, match="default"):
        MetaLearner(["a", "b"])
    with pytest.raises(ValueError, match="twice"):
        MetaLearner(["default", "a", "a"])
    with pytest.raises(ValueError, match="exploration"):
        MetaLearner(METHODS, exploration=1.5)
