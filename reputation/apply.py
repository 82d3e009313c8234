"""How one ledger entry moves the standing: a round settled, or a challenge graded.

Each entry is applied in one step, stakes locked and settled together, so the
books between entries hold no open stakes: a round that crashed before its
entry was written simply never happened, and an entry applied twice changes
nothing the second time (its id is closed). Ids close per writer (`closed_id`):
an entry of one key, whatever it holds and however early it is dated, never
closes the id of another's round or challenge. Applying the same entries in the
same order gives the same standing on every node. A round moves the book of
its domain only; a challenge answer counts in its question's domain.
"""

from __future__ import annotations

from dataclasses import replace

from core.records import DOMAINS, Domain
from reputation.outcome import ChallengeOutcome, RoundEvidence, RoundOutcome
from reputation.rules import Role, Rules
from reputation.standing import Graded, Standing


def has_say(standing: Standing, peer: str, rules: Rules, domain: Domain, role: Role = "answer") -> bool:
    """Whether `peer` may play `role` in a round of the domain, and so whether a round of the domain it
    writes as gateway counts: it holds a say there, or the domain is open (bootstrap rules) and it is
    not banned."""
    if standing.banned(peer):
        return False
    return standing.holds(peer, domain, rules, role) or standing.open(domain, rules)


def speaks(standing: Standing, peer: str, rules: Rules) -> bool:
    """Whether what the peer asks of a node outside a round counts (its models served, its routing table
    adopted): it holds a say of its own in some domain, or no domain has closed yet (the network's
    bootstrap). An open domain alone is not enough: one without challenge items never closes, and it
    would lend the network's models and its routing to any fresh key."""
    if standing.banned(peer):
        return False
    holds = any(standing.holds(peer, d, rules) for d in DOMAINS)
    return holds or all(standing.open(d, rules) for d in DOMAINS)


def judge_weight(standing: Standing, judge: str, rules: Rules, domain: Domain) -> float:
    """How much a judge's vote weighs in a round of the domain: its score there, every judge alike (1)
    while the domain is open, and nothing from a judge without a say."""
    if standing.banned(judge):
        return 0.0
    if standing.open(domain, rules):
        return 1.0
    book = standing.book(domain)
    return book.score(judge) if standing.holds(judge, domain, rules, "judge") else 0.0


def closed_id(writer: str, entry_id: str) -> str:
    """What a round's or challenge's id closes as: the writer's own, so that a copy under another key
    dated earlier can't close the real one before it is applied."""
    return f"{writer}/{entry_id}"


def apply_round_evidence(
    standing: Standing, gateway: str, evidence: RoundEvidence, rules: Rules, at: float
) -> dict[str, float]:
    """`apply_round` on the outcome the evidence gives, its judges weighed as they weigh at `at`."""
    standing.decay(at, rules)
    domain = evidence.domain
    outcome = evidence.outcome(lambda judge: judge_weight(standing, judge, rules, domain))
    return apply_round(standing, gateway, outcome, rules, at, domain)


def apply_round(
    standing: Standing, gateway: str, outcome: RoundOutcome, rules: Rules, at: float, domain: Domain
) -> dict[str, float]:
    """Stake every chosen peer that holds a say in the domain, then settle; returns the changes of score.
    A round whose gateway has no say there, or whose only answers are the gateway's own, is closed with
    no change; what the round costs a peer is taken on the gateway's word."""
    outcome = replace(outcome, round_id=closed_id(gateway, outcome.round_id))
    if standing.is_closed(outcome.round_id):
        return {}
    standing.decay(at, rules)
    alone = set(outcome.answerers) <= {gateway}
    if alone or not has_say(standing, gateway, rules, domain):
        standing.close(outcome.round_id)
        return {}
    book = standing.book(domain)
    for peer, roles in outcome.roles().items():
        for role in roles:
            # One without a say has no stake, so the round neither pays nor costs it.
            if standing.holds(peer, domain, rules, role):
                book.lock(outcome.round_id, peer, role, rules)
    deltas = book.settle(outcome, rules, at, writer=gateway)
    standing.close(outcome.round_id)
    return deltas


def apply_challenge(standing: Standing, challenge: ChallengeOutcome, rules: Rules, at: float) -> int:
    """Count the challenged peer's graded answers in their domains' evidence; returns how many counted.
    Counts only once, never on the challenger itself, and in each domain only from a challenger whose
    challenge counts there (`Standing.may_challenge`: anyone not banned while the domain is open, else
    its holders), as it stood before this challenge."""
    entry_id = closed_id(challenge.challenger, challenge.challenge_id)
    if standing.is_closed(entry_id):
        return 0
    standing.decay(at, rules)
    writer, peer = challenge.challenger, challenge.peer
    allowed = {
        d: standing.may_challenge(writer, peer, d, rules) for d in {a.domain for a in challenge.answers}
    }
    counted = 0
    for answer in challenge.answers:
        if allowed[answer.domain]:
            standing.count(peer, answer.domain, Graded(writer, answer.correct, answer.chance), at, rules)
            counted += 1
    standing.close(entry_id)
    return counted
