"""What the reputation tests share: the parameters their hand-computed figures were worked out with. One
writer may take a whole score under them, so that each figure is its own rule's; the writer's allowance
has tests of its own, under the default share."""

from __future__ import annotations

from reputation import Graded, ReputationBook, Rules, Standing

RULES = Rules(
    answer_position=0.5, answer_good=0.5, judge_agreement=0.5, malformed_message=0.25, writer_loss_share=1.0
)


def book_with(**scores: float) -> ReputationBook:
    book = ReputationBook()
    for peer, score in scores.items():
        book.grant(peer, score, RULES)
    book.decay(0.0, RULES)  # starts the clock: applying or settling at 0.0 decays nothing
    return book


# Peers proven in every domain, beside those a test names, so that no domain is open (bootstrap rules).
HOLDERS = ("holder-1", "holder-2", "holder-3")


def prove(standing: Standing, peer: str, domain: str = "general", rules: Rules = RULES) -> None:
    """Give the peer its say in the domain: enough right challenge answers, from a writer with none."""
    for _ in range(int(rules.say_min_items)):
        standing.count(peer, domain, Graded("examiner", True, 0.25), 0.0, rules)  # type: ignore[arg-type]


def standing_with(domain: str = "general", **scores: float) -> Standing:
    """A standing where each named peer holds a say in the domain with the given score there (0 and below
    `min_free`: proven, but without the free reputation to stake), beside HOLDERS at the prior."""
    standing = Standing()
    for peer in (*HOLDERS, *scores):
        prove(standing, peer, domain)
    book = standing.book(domain)  # type: ignore[arg-type]
    for peer, score in scores.items():
        book.adjust(peer, score - book.score(peer), RULES)
    standing.decay(0.0, RULES)  # starts the clock: applying or settling at 0.0 decays nothing
    return standing
