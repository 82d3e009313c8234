"""How one ledger entry moves the book: a round settled, or a challenge graded.

Each entry is applied in one step, stakes locked and settled together, so the
book between entries holds no open stakes: a round that crashed before its
entry was written simply never happened for the book, and an entry applied
twice changes nothing the second time (its id is closed). Applying the same
entries in the same order gives the same book on every node. Every loss an
entry inflicts is taken on its writer's word, within the writer's allowance
(`ReputationBook.allowance`).
"""

from __future__ import annotations

from reputation.book import ReputationBook
from reputation.outcome import ChallengeOutcome, RoundEvidence, RoundOutcome
from reputation.rules import Role, Rules


def has_say(book: ReputationBook, peer: str, rules: Rules, role: Role = "answer") -> bool:
    """Whether `peer` may play `role` in a round, and so whether what it writes (a round as gateway, a
    challenge as challenger) counts: it is eligible, or nobody is yet (and it is not banned)."""
    return book.eligible(peer, role, rules) or (book.bootstrapping(rules) and not book.banned(peer))


def judge_weight(book: ReputationBook, judge: str, rules: Rules) -> float:
    """How much a judge's vote weighs: its score, every judge alike while nobody has a say yet, and
    nothing from a judge without a say."""
    if book.bootstrapping(rules):
        return 0.0 if book.banned(judge) else 1.0
    return book.score(judge) if has_say(book, judge, rules, "judge") else 0.0


def apply_round_evidence(
    book: ReputationBook, gateway: str, evidence: RoundEvidence, rules: Rules, at: float
) -> dict[str, float]:
    """`apply_round` on the outcome the evidence gives, its judges weighed as they weigh at `at`."""
    book.decay(at, rules)
    return apply_round(
        book, gateway, evidence.outcome(lambda judge: judge_weight(book, judge, rules)), rules, at
    )


def apply_round(
    book: ReputationBook, gateway: str, outcome: RoundOutcome, rules: Rules, at: float
) -> dict[str, float]:
    """Stake every chosen peer that is eligible, then settle; returns the changes of score. A round whose
    gateway has no say is closed with no change, and what the round costs a peer is taken on the
    gateway's word."""
    if book.is_closed(outcome.round_id):
        return {}
    book.decay(at, rules)
    if not has_say(book, gateway, rules):
        book.abort(outcome.round_id)
        return {}
    for peer, roles in outcome.roles().items():
        for role in roles:
            # One not eligible has no stake, so the round neither pays nor costs it.
            if book.eligible(peer, role, rules):
                book.lock(outcome.round_id, peer, role, rules)
    return book.settle(outcome, rules, at, writer=gateway)


def apply_challenge(book: ReputationBook, challenge: ChallengeOutcome, rules: Rules, at: float) -> float:
    """Credit or debit the challenged peer for its graded answers; returns the change of its score. Counts
    only once, only from a challenger with say, and never on the challenger itself. A peer with no say
    yet earns credit only for a challenge it answered right in full, so a lucky answer among wrong ones
    does not buy an identity with nothing to lose its way in. What a challenge costs a peer is taken on
    the challenger's word: it chooses the questions, and which answers to write up."""
    if book.is_closed(challenge.challenge_id):
        return 0.0
    book.decay(at, rules)
    delta = 0.0
    if challenge.challenger != challenge.peer and has_say(book, challenge.challenger, rules):
        earns = book.eligible(challenge.peer, "answer", rules) or all(a.correct for a in challenge.answers)
        for answer in challenge.answers:
            change = rules.challenge_change(answer.correct, answer.chance, book.score(challenge.peer))
            if change < 0:
                delta += book.take(challenge.challenger, challenge.peer, -change, at, rules)
            elif earns:
                delta += book.adjust(challenge.peer, change, rules)
    book.abort(challenge.challenge_id)  # no stakes: this only closes it
    return delta
