"""Writers with a say who lie, against the ledger's rules: a gateway's forged faults and placings, invented
rounds with a colluding judge, a challenger's own questions. Each test plays the attacker, with the attack
code that bench.attack_ledger_claims measures."""

from __future__ import annotations

import pytest

from bench.attack_ledger_claims import BANK, challenge, forged_round, network, passed, rigged_round
from consensus import BadEntry, Ledger
from core.identity import Identity
from core.statements import sign
from node.ledger import round_record
from ranking.bradley_terry import Ranking
from routing.datasets import Item

VICTIM, ATTACKER, FRIEND, JUDGE = (Identity.generate() for _ in range(4))
SLACK = 1e-6  # what decay and the allowances' recovery move in the milliseconds the entries span


@pytest.fixture
def ledger() -> Ledger:
    """A network out of its bootstrap where the victim, the attacker and a judge have a say."""
    return network(VICTIM, ATTACKER, JUDGE)


def lost(ledger: Ledger, peer: Identity, before: float) -> float:
    return 1 - ledger.book.score(peer.peer_id) / before


def test_a_gateway_forging_faults_takes_at_most_its_share_of_a_peer(ledger: Ledger) -> None:
    before = ledger.book.score(VICTIM.peer_id)
    for _ in range(50):
        ledger.append(ATTACKER, "round", round_record(forged_round(VICTIM)))
    drained = f"drained: {lost(ledger, VICTIM, before):.1%}"
    assert ledger.book.eligible(VICTIM.peer_id, "answer", ledger.rules), drained
    assert lost(ledger, VICTIM, before) <= ledger.rules.writer_loss_share + SLACK


def test_invented_rounds_with_a_colluding_judge_take_at_most_the_gateways_share(ledger: Ledger) -> None:
    before = ledger.book.score(VICTIM.peer_id)
    for _ in range(100):
        ledger.append(ATTACKER, "round", round_record(rigged_round(VICTIM, FRIEND, JUDGE, ATTACKER)))
    drained = f"drained: {lost(ledger, VICTIM, before):.1%}"
    assert ledger.book.eligible(VICTIM.peer_id, "answer", ledger.rules), drained
    assert lost(ledger, VICTIM, before) <= ledger.rules.writer_loss_share + SLACK


def test_placings_the_ballots_do_not_give_count_for_nothing(ledger: Ledger) -> None:
    ledger.append(ATTACKER, "challenge", passed(FRIEND, ATTACKER))
    result = rigged_round(VICTIM, FRIEND, JUDGE, ATTACKER)
    # The judge's signed ballot, honest this time: the victim's answer is the better one, and GOOD.
    pairs = [[0, 1, "A"], [1, 0, "B"]]
    verdicts = {"0": "GOOD", "1": "BAD"}
    ballot = {"round": result.round_id, "gateway": ATTACKER.peer_id, "votes": pairs, "verdicts": verdicts}
    result.ballots = [sign(JUDGE, "ballot", ballot)]
    # What the gateway says of the round: the friend on top, found GOOD; the victim at the bottom, BAD.
    result.ranking, result.votes = Ranking((0.1, 0.9), (1, 0), 0.9), []
    result.good = {0: (0, 1), 1: (1, 1)}
    scores = {p: ledger.book.score(p.peer_id) for p in (VICTIM, FRIEND)}
    ledger.append(ATTACKER, "round", round_record(result))
    assert ledger.book.score(VICTIM.peer_id) > scores[VICTIM], "the gateway's placing counted"
    assert ledger.book.score(FRIEND.peer_id) < scores[FRIEND], "the gateway's placing counted"


def test_a_challenger_cannot_pass_a_friend_on_its_own_question(ledger: Ledger) -> None:
    own = Item("friend", "say-x", "qa", "Say X.", (), ("X",))
    with pytest.raises(BadEntry, match="not in the bank"):
        ledger.append(ATTACKER, "challenge", challenge(FRIEND, [(own, "X"), (own, "X")], ATTACKER))
    # Nor under the id of a bank question: every node grades against its own copy.
    renamed = [Item(i.dataset, i.id, "qa", "Say X.", (), ("X",)) for i in BANK[:2]]
    with pytest.raises(BadEntry, match="graded right, but it is not"):
        ledger.append(ATTACKER, "challenge", challenge(FRIEND, [(item, "X") for item in renamed], ATTACKER))
    assert ledger.book.score(FRIEND.peer_id) == 0


def test_a_challenger_cannot_fail_a_right_answer_nor_pass_a_wrong_one(ledger: Ledger) -> None:
    right, wrong = [(BANK[0], BANK[0].answers[0])], [(BANK[0], "I don't know")]
    for questions, correct, grade in ((right, False, "graded wrong"), (wrong, True, "graded right")):
        with pytest.raises(BadEntry, match=grade):
            ledger.append(ATTACKER, "challenge", challenge(FRIEND, questions, ATTACKER, correct))


def test_a_real_challenge_still_earns_the_credit(ledger: Ledger) -> None:
    ledger.append(ATTACKER, "challenge", passed(FRIEND, ATTACKER))
    assert ledger.book.score(FRIEND.peer_id) == pytest.approx(ledger.rules.prior)
    assert ledger.book.eligible(FRIEND.peer_id, "answer", ledger.rules)
