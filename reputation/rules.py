"""The reputation rules, all in one place, with every parameter in `Rules`.

Scores. Every peer has a score, its total reputation, between `floor` and
`ceiling`. A peer the book has never heard of has score 0, not the prior: a new
identity has no say until a proof-of-capability step credits it with `grant`,
so a thousand fresh identities are worth nothing.

Stakes. To answer or judge in a round a peer locks part of its free reputation
(score minus what it has locked in open rounds): `answer_stake` or `judge_stake`
of it. A peer whose free reputation is below `min_free` is not eligible and
cannot lock. Every stake belongs to one (round, peer, role), and comes back
when the round is settled or aborted.

Settlement. When a round is settled each stake comes back with a reward or a
loss that is a multiple of the stake itself, so the better staked, the more at
play:
- an answerer gains `answer_position * p * stake`, where p runs linearly from +1
  for the top of the Bradley-Terry order to -1 for its bottom (0 when it was the
  only candidate), plus `answer_good * (2g - 1) * stake`, where g is the share
  of GOOD verdicts its answer got (0 when nobody could check it);
- a judge gains `judge_agreement * (2a - 1) * stake`, where a is the share of its
  decided votes that agree with the fitted order (0 when it decided none);
- every missed deadline costs `missed_deadline * stake`, every malformed message
  `malformed_message * stake`, of the peer's whole stake in that round. A peer with
  no stake in the round is not touched: it was not chosen, so had no say.
A peer's net loss in a round is at most its stake there, and never takes its
score below the floor; its gain never takes it above the ceiling. Rewards are
minted, not taken from others; decay is what keeps the total from drifting up.

Challenges (proof of capability). A challenge asks a peer calibration
questions with checkable answers. Each right answer earns
`challenge_credit * (1 - chance)`; each wrong one costs
`challenge_credit * chance` plus `challenge_penalty` of the peer's score,
where chance is what a blind guess gets right (1/options for multiple choice,
0 for a free answer). A peer's score settles where its credits balance its
losses (higher the more often it is right), and a peer that keeps failing
loses its score geometrically, and its eligibility with it. A guess at
multiple choice is not charged below a score of 0, so an identity with
nothing to lose can guess its way in one time in four: challenges ask free
answers (node.challenges), which nobody guesses. Challenge results move the
score directly (no stake), within the floor and ceiling. They count only when
the challenger is itself eligible, or while no peer at all is (the network's
bootstrap), and never on oneself. The questions come from a bank every node
holds (`challenge_bank`, its digest) and are graded by one version of the
grader (`grader`): both are part of the rules, so that every node grades a
challenge answer alike, and a node with another bank or grader is on another
network rather than quietly refusing this one's entries.

Who counts. A round settles only if its gateway was eligible to answer when
the round was applied (or during bootstrap): an identity with no say can't
write rounds that move others' scores.

What one writer can take. A round's outcome is recomputed from its evidence
(the judges' signed ballots), but the writer of an entry still chooses what to
write: it can invent rounds with judges of its choosing, report faults nobody
can disprove (a missed deadline), ask a challenge question over and over and
publish only the wrong answers. So every loss an entry inflicts counts against
its writer (the round's gateway, the challenge's challenger): the entries of one
writer can take at most `writer_loss_share` of a peer's score, and what they
took counts half as much every `writer_loss_half_life_s`. A peer under attack
by one writer keeps nine tenths of its score, and its say with it; gains are
not bounded (see the README's security section).

Decay. As time passes every known score moves toward `prior`, half the way in
every `half_life_s` seconds, so old merit and old faults both fade. A score never
decays below what the peer has locked, so a stake is always covered.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Literal

Role = Literal["answer", "judge"]
ROLES: tuple[Role, ...] = ("answer", "judge")


@dataclass(frozen=True, slots=True)
class Rules:
    """Every parameter of the reputation rules (see the module docstring for how they are used)."""

    # Where decay pulls every known score: what a peer that has stopped playing ends up with.
    prior: float = 10.0
    # The bounds of a score. The floor is 0 so that a score is never negative.
    floor: float = 0.0
    ceiling: float = 100.0
    # Seconds in which a score goes half the way to the prior: a week, slow next to rounds of seconds.
    half_life_s: float = 7 * 24 * 3600.0
    # Shares of free reputation locked to answer or to judge: small, so a peer can play many rounds at once.
    answer_stake: float = 0.1
    judge_stake: float = 0.05
    # Free reputation below which a peer is not chosen; a tenth of the prior.
    min_free: float = 1.0
    # Multiples of the stake won (or lost) at the top (bottom) of the order and for all GOOD (all BAD).
    # Small next to the stake, so a score grows a few percent a round at most and decay keeps up.
    answer_position: float = 0.2
    answer_good: float = 0.2
    # Multiple of the stake won by a judge always with the consensus, lost by one always against it.
    judge_agreement: float = 0.4
    # Multiples of the peer's stake in the round lost per missed deadline and per malformed message.
    missed_deadline: float = 0.5
    # A malformed message (a reveal that does not match its commitment, a forged ballot) is cheating
    # or broken software: it costs the whole stake.
    malformed_message: float = 1.0
    # Reputation a right challenge answer earns (chance-adjusted): one right free answer makes a peer
    # eligible. A wrong one also costs this share of the peer's score.
    challenge_credit: float = 2.0
    challenge_penalty: float = 0.1
    # The most the entries of one writer can take from one peer, as a share of its score, and how fast
    # that recovers: a day, long next to rounds (a writer can't refill it by writing faster) and short
    # next to the week of decay (a peer with real faults still loses its score within days).
    writer_loss_share: float = 0.1
    writer_loss_half_life_s: float = 24 * 3600.0
    # What challenges are graded with: routing.grading.GRADER_VERSION, and the digest of the bank of
    # questions (routing.datasets.challenge_bank(): the civics calibration part's free answers). The
    # ledger refuses to run with a grader or a bank these don't name.
    grader: int = 1
    challenge_bank: str = "abc68a2a17a629d01c452d5422e5b886d2c40b2eb9446b346444967829b2444e"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and not (math.isfinite(value) and value >= 0):  # annotations are strings
                raise ValueError(f"{f.name} must be finite and non-negative, got {value}")
        if not isinstance(self.grader, int) or self.grader < 1:
            raise ValueError(f"grader must be a version number, got {self.grader!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", self.challenge_bank):
            raise ValueError(f"challenge_bank must be a digest, got {self.challenge_bank!r}")
        if not self.floor <= self.prior <= self.ceiling or self.floor == self.ceiling:
            raise ValueError("need floor <= prior <= ceiling and floor < ceiling")
        if self.half_life_s == 0 or self.writer_loss_half_life_s == 0:
            raise ValueError("half-lives must be positive")
        if not 0 < self.writer_loss_share <= 1:
            raise ValueError("writer_loss_share must lie in (0, 1]")
        if not (0 < self.answer_stake <= 1 and 0 < self.judge_stake <= 1):
            raise ValueError("stake fractions must lie in (0, 1]")

    def digest(self) -> str:
        """What every node of one network must agree on: nodes applying the same entries under other
        rules would compute other reputations, so ledger entries name the rules they were made under."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def stake_fraction(self, role: Role) -> float:
        if role == "answer":
            return self.answer_stake
        if role == "judge":
            return self.judge_stake
        raise ValueError(f"role must be answer or judge, got {role!r}")

    def writer_loss_counted(self, taken: float, elapsed_s: float) -> float:
        """What a writer's takings from a peer (`taken`, in shares of the peer's score at the time) still
        count against it `elapsed_s` seconds later."""
        return taken * 0.5 ** (max(0.0, elapsed_s) / self.writer_loss_half_life_s)

    def decayed(self, score: float, elapsed_s: float) -> float:
        """The score after elapsed_s seconds of decay toward the prior (none for elapsed_s <= 0)."""
        if elapsed_s <= 0:
            return score
        keep = 0.5 ** (elapsed_s / self.half_life_s)
        return self.prior + (score - self.prior) * keep

    def answer_multiple(self, position: int, of: int, good_ratio: float | None) -> float:
        """Multiple of its stake an answer at `position` (0 = top) of `of` candidates wins; negative loses."""
        place = 0.0 if of <= 1 else 1 - 2 * position / (of - 1)
        good = 0.0 if good_ratio is None else 2 * good_ratio - 1
        return self.answer_position * place + self.answer_good * good

    def judge_multiple(self, agreement: float | None) -> float:
        """Multiple of its stake a judge wins for agreeing with the consensus; negative loses."""
        return 0.0 if agreement is None else self.judge_agreement * (2 * agreement - 1)

    def challenge_change(self, correct: bool, chance: float, score: float) -> float:
        """The change of a peer's score for one challenge answer; `chance` is a blind guess's odds of
        being right."""
        if not 0 <= chance < 1:
            raise ValueError(f"chance must lie in [0, 1), got {chance}")
        if correct:
            return self.challenge_credit * (1 - chance)
        return -(self.challenge_penalty * score + self.challenge_credit * chance)

    def fault_multiple(self, missed: int, malformed: int) -> float:
        """Multiple of a peer's stake in a round that its missed deadlines and malformed messages cost."""
        return self.missed_deadline * missed + self.malformed_message * malformed
