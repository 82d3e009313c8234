"""Acceleration: which engine setting makes each kind of request fastest on this node, learnt from history.

`features` describes a request, `history` keeps what each served request cost,
and `learner` picks the method to run from them.
"""

from accel.features import TaskFeatures, describe
from accel.history import History, Record
from accel.learner import (
    BestOnAverage,
    Choice,
    Chooser,
    GradientBoosting,
    KindSummary,
    MetaLearner,
    RandomChoice,
)

__all__ = [
    "BestOnAverage",
    "Choice",
    "Chooser",
    "GradientBoosting",
    "History",
    "KindSummary",
    "MetaLearner",
    "RandomChoice",
    "Record",
    "TaskFeatures",
    "describe",
]
