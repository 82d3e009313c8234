"""Reputation: a score per peer, staked on every round and moved by the round's outcome.

Pure and network-free: no I/O and no clock reads; the caller passes the time in.
"""

from reputation.apply import apply_challenge, apply_round, has_say
from reputation.book import Insufficient, ReputationBook, RoundClosed, Stake
from reputation.outcome import (
    AnswerOutcome,
    ChallengeAnswer,
    ChallengeOutcome,
    JudgeOutcome,
    RoundOutcome,
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
    "RoundOutcome",
    "Rules",
    "Stake",
    "apply_challenge",
    "apply_round",
    "has_say",
    "judge_agreement",
    "round_outcome",
]
