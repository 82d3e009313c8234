"""The routing decision for one question: score the experts on the question's clusters, then pick in budget.

Pure: the node hands in the question's embedding, the cluster table and what
each expert's host announced (speed, queue, round trip, price), and gets back
the scores, the candidates as the selection saw them and the selection with
its reasons, which is also what the API reports to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from routing.scoring import DEFAULT_BETA, DEFAULT_TOP_K, ModelScore, score_models
from routing.selection import Budget, Candidate, Reason, Selection, predict_cost, predict_latency_s, select
from routing.table import ClusterTable

# Stands in for a missing table: every model is then scored on its prior alone.
_NO_TABLE = ClusterTable((), np.empty((0, 0)), np.empty((0, 0)), np.empty((0, 0)))


@dataclass(frozen=True, slots=True)
class Expert:
    """One model the network can ask, as the host that would serve it announces it (peer_id None: here)."""

    model: str
    peer_id: str | None
    tokens_per_second: float | None
    queued: int
    slots: int
    rtt_s: float
    price_per_token: float


@dataclass(frozen=True, slots=True)
class RouteDecision:
    scores: tuple[ModelScore, ...]  # best first
    candidates: tuple[Candidate, ...]  # in score order
    selection: Selection
    experts: dict[str, Expert]
    table_version: str | None

    @property
    def best(self) -> Expert | None:
        """The chosen expert most likely to be right (on a tie, the better scored); None if none fits.

        When every expert that fits is predicted to fail, the selection gains nothing
        from any of them and chooses none; a question still needs an answer, so it
        goes to the best scored of those that fit, as the Avengers ranking has it.
        """
        chosen = {c.name for c in self.selection.chosen}
        ordered = [c for c in self.candidates if c.name in chosen]
        if ordered:
            return self.experts[max(ordered, key=lambda c: c.quality).name]
        fitting = [c for c in self.candidates if self.selection.reasons[c.name] == Reason.NO_GAIN]
        return self.experts[fitting[0].name] if fitting else None

    @property
    def team(self) -> list[Expert]:
        """Every chosen expert, the most likely to be right first; `best` alone when none was chosen."""
        chosen = sorted(self.selection.chosen, key=lambda c: -c.quality)  # stable: score order on ties
        if chosen:
            return [self.experts[c.name] for c in chosen]
        return [self.best] if self.best is not None else []


def route(
    query: np.ndarray | None,
    table: ClusterTable | None,
    experts: Sequence[Expert],
    budget: Budget,
    *,
    prompt_tokens: int,
    max_tokens: int,
    top_k: int = DEFAULT_TOP_K,
    beta: float = DEFAULT_BETA,
) -> RouteDecision:
    """Score `experts` for the query (None: it could not be embedded) and select within `budget`."""
    by_model = {e.model: e for e in experts}
    if len(by_model) != len(experts):
        raise ValueError("one expert per model: pass the host that would serve each model")
    vector = np.empty(0) if query is None else query
    scores = score_models(vector, table or _NO_TABLE, list(by_model), top_k=top_k, beta=beta)
    candidates = tuple(
        Candidate(
            name=s.name,
            quality=s.quality,
            latency_s=predict_latency_s(
                rtt_s=by_model[s.name].rtt_s,
                queued=by_model[s.name].queued,
                max_tokens=max_tokens,
                tokens_per_second=by_model[s.name].tokens_per_second,
                slots=by_model[s.name].slots,
            ),
            cost=predict_cost(
                price_per_token=by_model[s.name].price_per_token,
                prompt_tokens=prompt_tokens,
                max_tokens=max_tokens,
            ),
        )
        for s in scores
    )
    return RouteDecision(
        scores=tuple(scores),
        candidates=candidates,
        selection=select(candidates, budget),
        experts=by_model,
        table_version=table.version if table is not None else None,
    )
