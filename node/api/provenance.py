"""The `swarm` object of an answer from the model `swarm`: what the router chose and why, and a round's
candidates, votes, signatures and timings."""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.wire.provenance import (
    Answered,
    CandidateReport,
    ExpertReport,
    Judge,
    Missed,
    RoundReport,
    RouteBudget,
    RoutedTo,
    RouteReport,
    RouteSelection,
    SignedStatement,
    VoteReport,
)
from core.wire.requests import SwarmOptions
from routing.router import Expert, RouteDecision

from ..rounds import RoundResult

FALLBACK_REASON = "answers: none is predicted right, and it ranks best of those within budget"


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None  # JSON has no infinity: "unbounded" or "unknown"


def route_report(
    decision: RouteDecision,
    options: SwarmOptions,
    elapsed_s: float,
    node_id: str | None,
    *,
    domain: str | None = None,
    without_say: Sequence[Expert] = (),
) -> RouteReport:
    """What the router chose and why, and who was left out for lack of a say in the question's domain."""
    best = decision.best
    assert best is not None
    scores = {s.name: s for s in decision.scores}
    selection = decision.selection
    return RouteReport(
        mode=options.mode,
        answered_by=RoutedTo(model=best.model, peer_id=best.peer_id or node_id),
        table_version=decision.table_version,
        decision_ms=round(elapsed_s * 1000, 3),
        basis=decision.scores[0].basis,
        clusters=list(decision.scores[0].clusters),
        budget=RouteBudget(
            experts=options.experts, max_latency_s=options.max_latency_s, max_cost=options.max_cost
        ),
        selection=RouteSelection(
            chosen=[c.name for c in selection.chosen],
            quality=selection.quality,
            latency_s=finite(selection.latency_s),
            cost=finite(selection.cost),
            search="exact" if selection.exact else "greedy",
        ),
        experts=[
            ExpertReport(
                model=c.name,
                peer_id=decision.experts[c.name].peer_id or node_id,
                score=scores[c.name].score,
                quality=c.quality,
                calibrated=scores[c.name].calibrated,
                predicted_latency_s=finite(c.latency_s),
                predicted_cost=finite(c.cost),
                reason=FALLBACK_REASON
                if c.name == best.model and c not in selection.chosen
                else str(selection.reasons[c.name]),
            )
            for c in decision.candidates
        ],
        domain=domain,
        without_say=[RoutedTo(model=e.model, peer_id=e.peer_id or node_id) for e in without_say],
        note=left_out_note(len(without_say)),
    )


def left_out_note(left_out: int) -> str | None:
    """What a provenance says of experts left out for lack of a say in the question's domain."""
    if not left_out:
        return None
    return f"{left_out} expert{'s' if left_out > 1 else ''} without a say in this domain left out"


def round_report(result: RoundResult, routed: RouteReport) -> RoundReport:
    """Who answered, who judged, every vote and signature, and the time each phase took."""
    ranking, winner = result.ranking, result.answer
    assert winner is not None

    def cid(index: int) -> str:
        return f"c{index}"

    return RoundReport(
        mode=result.mode,
        round_id=result.round_id,
        answered_by=Answered(model=winner.model, peer_id=winner.peer_id, candidate=cid(winner.cid)),
        degraded=result.degraded,
        confidence=ranking.confidence if ranking else None,
        bt_winner=cid(ranking.winner) if ranking else None,
        majority=result.majority_answer,
        candidates=[
            CandidateReport(
                id=cid(c.cid),
                model=c.model,
                peer_id=c.peer_id,
                answer=c.text,
                bt_score=ranking.strengths[c.cid] if ranking else None,
                good=result.good.get(c.cid, (0, 0))[0],
                checks=result.good.get(c.cid, (0, 0))[1],
                commitment=SignedStatement.model_validate(c.commitment.to_wire()),
                reveal_signature=c.reveal.signature,
            )
            for c in result.candidates
        ],
        votes=[
            VoteReport(judge=v.judge, a=cid(v.first), b=cid(v.second), outcome=v.outcome)
            for v in result.votes
        ],
        judges=[Judge(peer_id=judge, weight=weight) for judge, weight in result.judges.items()],
        ballots=[SignedStatement.model_validate(ballot.to_wire()) for ballot in result.ballots],
        missed=[Missed(peer_id=m.peer_id, phase=m.phase, reason=m.reason) for m in result.misses],
        timings_ms={
            "routing": routed.decision_ms,
            **{phase: round(seconds * 1000, 3) for phase, seconds in result.timings_s.items()},
        },
        routing=routed,
    )
