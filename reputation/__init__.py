"""Reputation: a score per peer, staked on every round and moved by the round's outcome.

Pure and network-free: no I/O and no clock reads; the caller passes the time in.
"""

from reputation.book import Insufficient, ReputationBook, RoundClosed, Stake
from reputation.outcome import AnswerOutcome, JudgeOutcome, RoundOutcome, judge_agreement
from reputation.rules import Role, Rules

__all__ = [
    "AnswerOutcome",
    "Insufficient",
    "JudgeOutcome",
    "ReputationBook",
    "Role",
    "RoundClosed",
    "RoundOutcome",
    "Rules",
    "Stake",
    "judge_agreement",
]
