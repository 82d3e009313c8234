"""A round's answerer priors: the router's calibrated quality of each candidate's model, as log-odds."""

from __future__ import annotations

from pathlib import Path

from core.identity import Identity
from core.statements import sign
from core.wire.provenance import ExpertReport, RouteReport
from node.rounds import Candidate, RoundConfig, RoundResult, RoundService
from ranking.bradley_terry import Vote
from routing.grading import option_count

QUESTION = "Which is a vitamin?\nA. Iron\nB. Vitamin C\nC. Zinc\nD. Salt"


def expert(model: str, quality: float, calibrated: bool = True) -> ExpertReport:
    return ExpertReport.model_construct(
        model=model, peer_id=f"p-{model}", quality=quality, calibrated=calibrated
    )


def played(tmp_path: Path, config: RoundConfig, experts: list[ExpertReport]) -> RoundResult:
    """Three candidates: m0 (quality 0.9) says A, m1 and m2 (0.3 each) say B; one judge, of no weight,
    prefers B."""
    identity = Identity.load_or_create(tmp_path / "gateway")
    statement = sign(identity, "reveal", {})
    result = RoundResult(round_id="r", mode="consensus", question=QUESTION)
    result.candidates = [
        Candidate(i, f"m{i}", f"p-m{i}", text, statement, statement)
        for i, text in enumerate(["A", "B", "B."])
    ]
    result.routing = RouteReport.model_construct(experts=experts)
    result.votes = [Vote("judge", 1, 0, "first"), Vote("judge", 0, 1, "second")]
    result.judges = {"judge": 0.0}
    RoundService(identity, None, {}, list, config=config)._aggregate(result, result.candidates)
    return result


def test_with_priors_and_a_weightless_judge_the_calibrated_vote_decides(tmp_path: Path) -> None:
    experts = [expert("m0", 0.9), expert("m1", 0.3), expert("m2", 0.3)]
    # log-odds among four options: log(3 * 0.9 / 0.1) = 3.30 for A, 2 * log(3 * 0.3 / 0.7) = 0.50 for B
    assert played(tmp_path, RoundConfig(answerer_priors=True), experts).winner == 0
    # without priors, the two that agree pool their (level) strength and outweigh the one
    assert played(tmp_path, RoundConfig(), experts).winner in (1, 2)


def test_an_uncalibrated_expert_gives_no_priors(tmp_path: Path) -> None:
    experts = [expert("m0", 0.9), expert("m1", 0.3), expert("m2", 0.3, calibrated=False)]
    assert played(tmp_path, RoundConfig(answerer_priors=True), experts).winner in (1, 2)


def test_the_options_a_question_lists_are_counted() -> None:
    assert option_count(QUESTION) == 4
    assert option_count("What is the capital of France?") == 0
    assert option_count("Pick one.\nA. yes") == 0  # one option is no list
