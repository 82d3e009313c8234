"""What the reputation tests share: the parameters their hand-computed figures were worked out with. One
writer may take a whole score under them, so that each figure is its own rule's; the writer's allowance
has tests of its own, under the default share."""

from __future__ import annotations

from reputation import ReputationBook, Rules

RULES = Rules(
    answer_position=0.5, answer_good=0.5, judge_agreement=0.5, malformed_message=0.25, writer_loss_share=1.0
)


def book_with(**scores: float) -> ReputationBook:
    book = ReputationBook()
    for peer, score in scores.items():
        book.grant(peer, score, RULES)
    book.decay(0.0, RULES)  # starts the clock: applying or settling at 0.0 decays nothing
    return book
