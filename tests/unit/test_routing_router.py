"""The routing decision (scores + budgeted selection) and the node's table keeping, on hand-computed cases."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from node.router import TABLE_FILE, Router
from routing.router import Expert, route
from routing.selection import Budget, Reason
from routing.table import ClusterTable

# Cluster 0 (x axis): a is right 9/10, b 2/10. Cluster 1 (y axis): b 9/10, a 1/10.
TABLE = ClusterTable(("a", "b"), np.eye(2), [[9, 2], [1, 9]], [[10, 10], [10, 10]], created_at=1.0)


def expert(model: str, tps: float | None = 50.0, *, queued: int = 0, rtt_s: float = 0.0, price: float = 0.0):
    return Expert(model, None, tps, queued, 1, rtt_s, price)


def test_the_question_goes_to_the_expert_of_its_cluster() -> None:
    experts = [expert("a"), expert("b")]
    near_x = route(np.array([1.0, 0.05]), TABLE, experts, Budget(), prompt_tokens=10, max_tokens=50)
    near_y = route(np.array([0.05, 1.0]), TABLE, experts, Budget(), prompt_tokens=10, max_tokens=50)
    assert near_x.best is not None and near_x.best.model == "a"
    assert near_y.best is not None and near_y.best.model == "b"
    assert near_x.table_version == TABLE.version
    assert [s.name for s in near_x.scores] == ["a", "b"]


def test_predictions_come_from_what_the_hosts_announced() -> None:
    # a: 20 tok/s, 3 queued on 1 slot, 0.1 s away: 0.1 + 4 waves x 100/20 = 20.1 s; 0.01 x 110 tokens.
    experts = [expert("a", 20.0, queued=3, rtt_s=0.1, price=0.01), expert("b", None)]
    decision = route(np.array([1.0, 0.0]), TABLE, experts, Budget(), prompt_tokens=10, max_tokens=100)
    a, b = (next(c for c in decision.candidates if c.name == n) for n in ("a", "b"))
    assert a.latency_s == pytest.approx(20.1)
    assert a.cost == pytest.approx(1.1)
    assert b.latency_s == math.inf  # no speed announced: nothing can be promised


def test_a_latency_budget_sends_the_question_to_the_faster_weaker_expert() -> None:
    experts = [expert("a", 5.0), expert("b", 100.0)]
    decision = route(
        np.array([1.0, 0.0]), TABLE, experts, Budget(max_latency_s=2.0), prompt_tokens=10, max_tokens=50
    )
    assert decision.best is not None and decision.best.model == "b"
    assert decision.selection.reasons["a"] == Reason.OVER_LATENCY


def test_nothing_fits_a_budget_nobody_can_meet() -> None:
    decision = route(
        np.array([1.0, 0.0]),
        TABLE,
        [expert("a", 5.0)],
        Budget(max_latency_s=0.5),
        prompt_tokens=10,
        max_tokens=50,
    )
    assert decision.best is None
    assert decision.selection.reasons == {"a": Reason.OVER_LATENCY}


def test_without_a_table_every_expert_is_equal_and_the_fastest_answers() -> None:
    decision = route(
        None, None, [expert("a", 10.0), expert("b", 80.0)], Budget(), prompt_tokens=1, max_tokens=40
    )
    assert {s.basis for s in decision.scores} == {"overall"}
    assert decision.best is not None and decision.best.model == "b"
    assert decision.table_version is None


def test_an_expert_the_table_never_saw_gets_a_prior_and_can_win_on_speed() -> None:
    experts = [expert("a", 1.0), expert("new", 100.0)]
    decision = route(
        np.array([1.0, 0.0]), TABLE, experts, Budget(max_latency_s=5.0), prompt_tokens=1, max_tokens=50
    )
    new = next(s for s in decision.scores if s.name == "new")
    assert not new.calibrated and new.quality > 0
    assert decision.best is not None and decision.best.model == "new"


def test_the_router_keeps_the_newest_table_on_disk(tmp_path: Path) -> None:
    router = Router(tmp_path)
    assert router.table is None
    assert router.adopt(TABLE)
    older = ClusterTable(("a",), np.eye(2), [[1], [1]], [[1], [1]], created_at=0.5)
    assert not router.adopt(older)
    assert router.table is TABLE
    again = Router(tmp_path)  # a restarted node routes with the table it had
    assert again.table is not None and again.table.version == TABLE.version


def test_a_corrupt_table_file_is_set_aside_not_used(tmp_path: Path) -> None:
    path = tmp_path / TABLE_FILE
    path.parent.mkdir(parents=True)
    path.write_text(TABLE.to_json().replace('"counts": [[10, 10]', '"counts": [[10, 11]'))
    router = Router(tmp_path)
    assert router.table is None
    assert path.with_suffix(".rejected").exists() and not path.exists()


class _Embedder:
    name = "other-embedder"
    dim = 2

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.tile([1.0, 0.0], (len(texts), 1))


async def test_a_table_from_another_embedding_space_is_not_used_for_clusters(tmp_path: Path) -> None:
    router = Router(tmp_path, embedder=_Embedder)
    router.adopt(TABLE)  # built with all-MiniLM-L6-v2
    assert await router.embed("anything") is None
    matching = ClusterTable(
        TABLE.models, TABLE.centroids, TABLE.correct, TABLE.counts, embedder="other-embedder"
    )
    router.table = matching
    assert np.array_equal(await router.embed("anything"), [1.0, 0.0])


def test_when_every_expert_is_predicted_wrong_the_best_ranked_that_fits_still_answers() -> None:
    hopeless = ClusterTable(("a", "b", "c"), np.eye(2), [[0, 0, 0], [0, 0, 0]], [[4, 4, 0], [4, 4, 0]])
    experts = [expert("a", 1.0), expert("b", 100.0), expert("c", 100.0)]
    decision = route(
        np.array([1.0, 0.0]), hopeless, experts, Budget(max_latency_s=5.0), prompt_tokens=1, max_tokens=50
    )
    assert decision.selection.chosen == ()
    # a and b share rank 0 but a is too slow; c (never calibrated) ranks below both.
    assert decision.best is not None and decision.best.model == "b"
