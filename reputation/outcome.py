"""What a round's outcome says about each participant, in the terms the reputation rules use.

Independent of node/. The book settles a round from its `RoundOutcome`; the
ledger computes that outcome from the round's evidence (`RoundEvidence`: who
wrote each candidate, the judges' votes and verdicts, what the gateway
reports), with the same functions the gateway ranks the round with, so a
gateway's word on placings and agreement counts for nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from core.records import DOMAINS, GENERAL, Domain
from ranking.bradley_terry import TIE_DIGITS, Ranking, Vote, fit
from reputation.rules import ROLES, Role


def _share(name: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and 0 <= value <= 1):
        raise ValueError(f"{name} must lie in [0, 1] or be None, got {value}")


@dataclass(frozen=True, slots=True)
class AnswerOutcome:
    """An answer's place in the fitted order (0 = top) of `of` candidates, and its share of GOOD verdicts
    (None when no judge could check it)."""

    position: int
    of: int
    good_ratio: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.position < self.of:
            raise ValueError(f"position must lie in 0..{self.of - 1}, got {self.position}")
        _share("good_ratio", self.good_ratio)


@dataclass(frozen=True, slots=True)
class JudgeOutcome:
    """The share of a judge's decided votes that agree with the fitted order (None when it decided none)."""

    agreement: float | None

    def __post_init__(self) -> None:
        _share("agreement", self.agreement)


@dataclass(frozen=True, slots=True)
class RoundOutcome:
    """Per peer: how its answer placed, how its votes agreed, and how many deadlines it missed and
    malformed messages it sent (counts of 0 may be left out). `chosen` names the roles each peer was
    given, for those who dropped out before their answer or ballot counted; the peers in `answerers`
    and `judges` were chosen for those roles without saying so."""

    round_id: str
    answerers: Mapping[str, AnswerOutcome] = field(default_factory=dict)
    judges: Mapping[str, JudgeOutcome] = field(default_factory=dict)
    missed: Mapping[str, int] = field(default_factory=dict)
    malformed: Mapping[str, int] = field(default_factory=dict)
    chosen: Mapping[str, tuple[Role, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, counts in (("missed", self.missed), ("malformed", self.malformed)):
            if any(n < 0 for n in counts.values()):
                raise ValueError(f"{name} counts must be non-negative")
        if any(role not in ROLES for roles in self.chosen.values() for role in roles):
            raise ValueError(f"roles must be among {ROLES}")

    def roles(self) -> dict[str, tuple[Role, ...]]:
        """Every chosen peer's roles, in a fixed order."""
        roles: dict[str, set[Role]] = {}
        for peer, given in self.chosen.items():
            roles.setdefault(peer, set()).update(given)
        for peer in self.answerers:
            roles.setdefault(peer, set()).add("answer")
        for peer in self.judges:
            roles.setdefault(peer, set()).add("judge")
        return {peer: tuple(r for r in ROLES if r in given) for peer, given in sorted(roles.items())}

    def peers(self) -> set[str]:
        return {*self.answerers, *self.judges, *self.missed, *self.malformed, *self.chosen}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's GOOD (or BAD) check of candidate `cid`."""

    judge: str
    cid: int
    good: bool


@dataclass(frozen=True, slots=True)
class RoundEvidence:
    """What a round's entry shows: the author of each candidate (`authors[cid]`, as its signed commitment
    says), the judges' votes and verdicts (as their signed ballots say), and what only the gateway's word
    stands for: who missed a deadline or sent something malformed, who was chosen for which role, and
    the question's domain (a gateway that names another only moves the stakes of peers with a say
    there, within its allowance)."""

    round_id: str
    authors: tuple[str, ...]
    votes: tuple[Vote, ...] = ()
    verdicts: tuple[Verdict, ...] = ()
    missed: Mapping[str, int] = field(default_factory=dict)
    malformed: Mapping[str, int] = field(default_factory=dict)
    chosen: Mapping[str, tuple[Role, ...]] = field(default_factory=dict)
    domain: Domain = GENERAL

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {self.domain!r}")

    def outcome(self, weight: Callable[[str], float]) -> RoundOutcome:
        """The outcome as the gateway computes it, from this evidence alone: the votes fitted as the
        gateway fits them (`ranking.aggregate.decide`), each judge weighing `weight(judge)`; a judge that
        weighs 0 (one with no say) counts for nothing, its checks included."""
        judges = {v.judge for v in self.votes} | {v.judge for v in self.verdicts}
        weights = {judge: w for judge in sorted(judges) if (w := weight(judge)) > 0}
        votes = [v for v in self.votes if v.judge in weights]
        ranking = fit(len(self.authors), votes, {v.judge: weights[v.judge] for v in votes}) if votes else None
        good: dict[int, tuple[int, int]] = {}
        for v in self.verdicts:
            if v.judge in weights:
                yes, total = good.get(v.cid, (0, 0))
                good[v.cid] = (yes + v.good, total + 1)
        return round_outcome(
            self.round_id,
            self.authors,
            ranking,
            good,
            votes,
            missed=self.missed,
            malformed=self.malformed,
            chosen=self.chosen,
        )


@dataclass(frozen=True, slots=True)
class ChallengeAnswer:
    """One graded challenge answer in its question's domain; `chance` is what a peer with no skill gets
    right: the better of a blind guess (1/options, or 0) and a copycat of the domain's commonest answer."""

    item: str
    correct: bool
    chance: float = 0.0
    domain: Domain = GENERAL

    def __post_init__(self) -> None:
        if not 0 <= self.chance < 1:
            raise ValueError(f"chance must lie in [0, 1), got {self.chance}")
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {self.domain!r}")


@dataclass(frozen=True, slots=True)
class ChallengeOutcome:
    """A proof-of-capability challenge: `challenger` asked `peer` and graded its answers."""

    challenge_id: str
    challenger: str
    peer: str
    answers: tuple[ChallengeAnswer, ...]


def judge_agreement(judge: str, votes: Iterable[Vote], ranking: Ranking) -> float | None:
    """The share of `judge`'s decided votes (A or B, not U) whose winner the ranking places above the
    loser; None if it decided none. A pair the fit left level (equal strengths, ordered only by index)
    is no consensus either way, so a vote on it is left out rather than counted."""
    rank = {cid: place for place, cid in enumerate(ranking.order)}
    level = [round(s, TIE_DIGITS) for s in ranking.strengths]
    agreed = decided = 0
    for v in votes:
        if v.judge != judge or v.outcome == "tie":
            continue
        winner, loser = (v.first, v.second) if v.outcome == "first" else (v.second, v.first)
        if level[winner] == level[loser]:
            continue
        decided += 1
        agreed += rank[winner] < rank[loser]
    return None if decided == 0 else agreed / decided


def round_outcome(
    round_id: str,
    authors: Sequence[str],
    ranking: Ranking | None,
    good: Mapping[int, tuple[int, int]],
    votes: Sequence[Vote],
    *,
    missed: Mapping[str, int] | None = None,
    malformed: Mapping[str, int] | None = None,
    chosen: Mapping[str, tuple[Role, ...]] | None = None,
) -> RoundOutcome:
    """The outcome of a round whose candidate `cid` was written by `authors[cid]`: each author by its best
    placed candidate (all level when there was no ranking), each judge that voted by its agreement."""
    answerers: dict[str, AnswerOutcome] = {}
    place = (
        {cid: i for i, cid in enumerate(ranking.order)} if ranking else dict.fromkeys(range(len(authors)), 0)
    )
    of = len(authors) if ranking else 1
    for cid in sorted(range(len(authors)), key=lambda c: place[c]):
        if authors[cid] not in answerers:
            checks = good.get(cid, (0, 0))
            ratio = checks[0] / checks[1] if checks[1] else None
            answerers[authors[cid]] = AnswerOutcome(place[cid], of, ratio)
    judges = {
        judge: JudgeOutcome(judge_agreement(judge, votes, ranking) if ranking else None)
        for judge in sorted({v.judge for v in votes})
    }
    return RoundOutcome(
        round_id, answerers, judges, dict(missed or {}), dict(malformed or {}), dict(chosen or {})
    )
