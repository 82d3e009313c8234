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

Domains. A say is held per domain (`core.records.DOMAINS`: general, medical,
logic, code; groups of routing clusters by topic), each with a book of its own:
a round moves the scores of its question's domain, a challenge answer counts in
its question's domain. A peer proven on logic answers logic questions whatever
it knows of civics.

Challenges (proof of capability). A challenge asks a peer questions from the
bank with checkable answers. Eligibility is a statistical test, not a score.
Each graded answer counts in its domain's evidence for the peer: answers right
of answers asked, and their bar, the better of a blind guess (1/4 for four
options, 0 for a free answer) and a copycat always giving the bank's commonest
answer in that domain, plus `say_margin`. Evidence fades with time, by half
every `say_half_life_s` of entry time (not per answer, so a writer flooding
challenges can't wash out what others found). No challenger's answers count
for more than `say_per_writer` answers (scaled down past that), so no one
writer decides. A peer gains its say
when it has `say_min_items` answers or more and the Wilson lower bound at
`say_z` (one-sided 99.5%) on its accuracy lies above the bar; it keeps it while
the bound at `say_keep_z` does, so an honest peer a little above the bar does
not flicker in and out, and one that stops answering well loses it. A random
answerer and a copycat sit at or under the bar however long they play. A peer
gaining a say the first time is granted the prior in that domain's book; from
then on its rounds move that score, and it must also have `min_free` free.

Who challenges. Challengers are drawn by a rule nobody controls: for a peer
and domain, the candidates (the domain's holders, or while it is open every
peer not banned) are ranked by sha256(epoch, peer, candidate), the epoch being
the time in `challenger_epoch_s`, and the first `challengers` do the
challenging (node.challenges), so the load on a peer does not grow with the
network and nobody picks its examiners. The ledger does not refuse a
challenge from outside the draw (what a peer answered is checked either way);
what bounds any one writer is `say_per_writer`. Where fewer than `min_holders`
peers hold a say the domain falls back to bootstrap rules: challenges count
from any peer that is not banned, every peer may answer and judge there, and
every vote weighs 1; so one peer that alone holds a say can't keep anyone out.
Elsewhere a challenge counts only from a holder of the domain. Never on
oneself. The questions come from a bank every node holds (`challenge_bank`,
its digest) and are graded by one version of the grader (`grader`): both are
part of the rules, so that every node grades a challenge answer alike.

Who counts. A round settles only if its gateway had a say in the round's
domain when the round was applied: an identity with no say can't write rounds
that move others' scores. A round whose only answers are the gateway's own
moves nothing: a gateway gains nothing from rounds it answers alone.

What one writer can take. A round's outcome is recomputed from its evidence
(the judges' signed ballots), but the writer of an entry still chooses what to
write: it can invent rounds with judges of its choosing, report faults nobody
can disprove (a missed deadline). So every loss a round inflicts counts against
its gateway: the entries of one
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
    # A say per domain (see the module docstring): how fast evidence fades, the most of it one challenger's
    # answers may be, how much it takes, the margin over the no-skill bar, and the bounds' z to gain
    # (one-sided 99.5%) and to keep a say.
    say_half_life_s: float = 6 * 3600.0
    say_per_writer: float = 50.0
    say_min_items: float = 20.0
    say_margin: float = 0.03
    say_z: float = 2.576
    say_keep_z: float = 0.5
    # Below this many holders a domain runs under bootstrap rules; this many challengers, drawn per
    # epoch, challenge a peer in a domain.
    min_holders: int = 3
    challengers: int = 3
    challenger_epoch_s: float = 600.0
    # The most the entries of one writer can take from one peer, as a share of its score, and how fast
    # that recovers: a day, long next to rounds (a writer can't refill it by writing faster) and short
    # next to the week of decay (a peer with real faults still loses its score within days).
    writer_loss_share: float = 0.1
    writer_loss_half_life_s: float = 24 * 3600.0
    # What challenges are graded with: routing.grading.GRADER_VERSION, and the digest of the bank of
    # questions (routing.datasets.challenge_bank(): civics, medical and logic calibration items). The
    # ledger refuses to run with a grader or a bank these don't name.
    grader: int = 1
    # What a ledger entry's evidence holds (consensus.entry.EVIDENCE_FORMAT): since 2, every statement in
    # it names the gateway or challenger it was given to, and ids close per writer. The ledger refuses to
    # run under another.
    evidence: int = 2
    challenge_bank: str = "b139e54aca475882840e784cb89a588f0e962b59cc08e527970473220efbf746"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "float" and not (math.isfinite(value) and value >= 0):  # annotations are strings
                raise ValueError(f"{f.name} must be finite and non-negative, got {value}")
        for name in ("min_holders", "challengers"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive whole number, got {getattr(self, name)!r}")
        if self.say_half_life_s == 0 or self.say_per_writer < 1 or self.challenger_epoch_s == 0:
            raise ValueError("need say_half_life_s > 0, say_per_writer >= 1 and challenger_epoch_s > 0")
        if not isinstance(self.evidence, int) or self.evidence < 1:
            raise ValueError(f"evidence must be a format number, got {self.evidence!r}")
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

    def wilson_lower(self, right: float, asked: float, z: float | None = None) -> float:
        """The Wilson score lower bound at `z` (default `say_z`) on an accuracy of `right` of `asked`
        (0 for none); counts may be fractional, as faded evidence is."""
        if asked <= 0:
            return 0.0
        z = self.say_z if z is None else z
        z2, p = z**2, min(1.0, right / asked)
        centre = p + z2 / (2 * asked)
        spread = z * math.sqrt(p * (1 - p) / asked + z2 / (4 * asked**2))
        return max(0.0, (centre - spread) / (1 + z2 / asked))

    def gains(self, right: float, asked: float, bar: float) -> bool:
        """Whether evidence of `right` of `asked`, whose no-skill odds are `bar`, earns a say: enough
        answers, and the lower bound above the bar and the margin."""
        return asked >= self.say_min_items and self.wilson_lower(right, asked) > bar + self.say_margin

    def keeps(self, right: float, asked: float, bar: float) -> bool:
        """Whether a peer holding a say keeps it on this evidence: the looser bound still above."""
        return self.wilson_lower(right, asked, self.say_keep_z) > bar + self.say_margin

    def fault_multiple(self, missed: int, malformed: int) -> float:
        """Multiple of a peer's stake in a round that its missed deadlines and malformed messages cost."""
        return self.missed_deadline * missed + self.malformed_message * malformed
