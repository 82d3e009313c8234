"""Reputation: a score per peer and domain, staked on every round and moved by the round's outcome, and
a say per domain earned by challenges (`Standing`).

Pure and network-free: no I/O and no clock reads; the caller passes the time in.
"""

from reputation.apply import (
    apply_challenge,
    apply_round,
    apply_round_evidence,
    has_say,
    judge_weight,
    speaks,
)
from reputation.book import Insufficient, ReputationBook, RoundClosed, Stake
from reputation.outcome import (
    AnswerOutcome,
    ChallengeAnswer,
    ChallengeOutcome,
    JudgeOutcome,
    RoundEvidence,
    RoundOutcome,
    Verdict,
    judge_agreement,
    round_outcome,
)
from reputation.rules import Role, Rules
from reputation.standing import Graded, Standing, Tally

__all__ = [
    "AnswerOutcome",
    "ChallengeAnswer",
    "ChallengeOutcome",
    "Graded",
    "Insufficient",
    "JudgeOutcome",
    "ReputationBook",
    "Role",
    "RoundClosed",
    "RoundEvidence",
    "RoundOutcome",
    "Rules",
    "Stake",
    "Standing",
    "Tally",
    "Verdict",
    "apply_challenge",
    "apply_round",
    "apply_round_evidence",
    "has_say",
    "judge_agreement",
    "judge_weight",
    "round_outcome",
    "speaks",
]
