"""Reputation: a score per peer, staked on every round and moved by the round's outcome.

Pure and network-free: no I/O and no clock reads; the caller passes the time in.
"""

from reputation.apply import apply_challenge, apply_round, apply_round_evidence, has_say, judge_weight
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

__all__ = [
    "AnswerOutcome",
    "ChallengeAnswer",
    "ChallengeOutcome",
    "Insufficient",
    "JudgeOutcome",
    "ReputationBook",
    "Role",
    "RoundClosed",
    "RoundEvidence",
    "RoundOutcome",
    "Rules",
    "Stake",
    "Verdict",
    "apply_challenge",
    "apply_round",
    "apply_round_evidence",
    "has_say",
    "judge_agreement",
    "judge_weight",
    "round_outcome",
]
