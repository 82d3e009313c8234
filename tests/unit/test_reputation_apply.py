"""Rounds applied to the standing (the gateway's say in the round's domain, stakes only for peers with a
say there, missed deadlines, a malformed reveal under the default rules), round outcomes built from a
ranking, and the book's direct adjustments. Challenges: tests/unit/test_reputation_standing.py."""

from __future__ import annotations

import pytest

from ranking.bradley_terry import Ranking, Vote
from reputation import (
    AnswerOutcome,
    JudgeOutcome,
    RoundOutcome,
    Rules,
    Standing,
    apply_round,
    has_say,
    round_outcome,
    speaks,
)
from reputation.apply import closed_id
from tests.support.reputation import HOLDERS, RULES, book_with, prove, standing_with

# apply_round


def test_a_round_from_a_gateway_with_no_say_closes_with_no_change() -> None:
    standing = standing_with(a=10.0, b=10.0)
    book = standing.book("general")
    outcome = RoundOutcome("r1", {"a": AnswerOutcome(0, 2, 1.0), "b": AnswerOutcome(1, 2, 0.0)})
    assert apply_round(standing, "nobody", outcome, RULES, 0.0, "general") == {}
    assert book.score("a") == 10.0 and book.score("b") == 10.0
    assert standing.is_closed(closed_id("nobody", "r1")) and book.stakes() == ()
    assert apply_round(standing, "nobody", outcome, RULES, 0.0, "general") == {}  # closed: no second chance
    # A gateway with a say in another domain only moves nothing either.
    prove(standing, "logician", "logic")
    assert (
        apply_round(standing, "logician", RoundOutcome("r2", outcome.answerers), RULES, 0.0, "general") == {}
    )
    # Ids close per writer: the id the others closed is still open to a gateway with a say, whose round
    # of it moves the scores.
    assert not standing.is_closed(closed_id("a", "r1"))
    assert apply_round(standing, "a", outcome, RULES, 0.0, "general") == pytest.approx({"a": 1.0, "b": -1.0})
    assert apply_round(standing, "a", outcome, RULES, 0.0, "general") == {}


def test_a_round_stakes_only_eligible_peers() -> None:
    standing = standing_with(a=10.0, j=10.0, low=0.5)
    book = standing.book("general")
    outcome = RoundOutcome(
        "r1",
        # low placed first with every check GOOD, a last with every check BAD.
        {"low": AnswerOutcome(0, 2, 1.0), "a": AnswerOutcome(1, 2, 0.0)},
        {"j": JudgeOutcome(1.0), "unknown": JudgeOutcome(1.0)},
    )
    deltas = apply_round(standing, "a", outcome, RULES, 0.0, "general")
    # a staked 1.0 and lost it all (-0.5 for the place, -0.5 for the checks); j staked 0.5 and won half of it.
    assert deltas == pytest.approx({"a": -1.0, "j": 0.25})
    assert book.score("low") == 0.5 and book.score("unknown") == 0.0 and "unknown" not in book.peers()
    assert book.stakes() == ()


def test_a_peer_chosen_but_missing_loses_part_of_its_stake() -> None:
    standing = standing_with(a=10.0, m=10.0, k=10.0)
    book = standing.book("general")
    outcome = RoundOutcome(
        "r1",
        {"a": AnswerOutcome(0, 1), "b": AnswerOutcome(0, 1)},
        missed={"m": 1, "k": 1},
        chosen={"m": ("answer",), "k": ("judge",)},
    )
    deltas = apply_round(standing, "a", outcome, RULES, 0.0, "general")
    # Half of each stake: 0.5 of m's answer stake of 1.0, 0.25 of k's judge stake of 0.5.
    assert deltas == pytest.approx({"a": 0.0, "m": -0.5, "k": -0.25})
    assert book.score("m") == pytest.approx(9.5) and book.score("k") == pytest.approx(9.75)


def test_with_the_default_rules_a_copycat_loses_its_whole_answer_stake() -> None:
    # A copycat's reveal does not match its commitment: one malformed message, and no candidate.
    outcome = RoundOutcome(
        "r1", {"g": AnswerOutcome(0, 1)}, malformed={"copycat": 1}, chosen={"copycat": ("answer",)}
    )
    rules = Rules()
    standing = Standing()
    for peer in (*HOLDERS, "g", "copycat"):
        prove(standing, peer, rules=rules)
    standing.decay(0.0, rules)
    book = standing.book("general")
    stake = rules.answer_stake * 10.0
    deltas = apply_round(standing, "h", outcome, rules, 0.0, "general")
    assert deltas == {}  # "h" has no say
    outcome = RoundOutcome("r2", outcome.answerers, malformed=outcome.malformed, chosen=outcome.chosen)
    deltas = apply_round(standing, "holder-1", outcome, rules, 0.0, "general")
    assert deltas == pytest.approx({"g": 0.0, "copycat": -stake})
    assert book.score("copycat") == pytest.approx(10.0 - stake) and book.stakes() == ()
    # Under the rules the figures above are worked out with, the same round costs a quarter of it.
    standing = standing_with(g=10.0, copycat=10.0)
    outcome = RoundOutcome("r3", outcome.answerers, malformed=outcome.malformed, chosen=outcome.chosen)
    assert apply_round(standing, "holder-1", outcome, RULES, 0.0, "general")["copycat"] == pytest.approx(
        -0.25 * stake
    )


# round_outcome


def test_round_outcome_from_a_ranking_by_hand() -> None:
    authors = ["p", "q", "p", "r"]  # p wrote candidates 0 and 2
    ranking = Ranking(strengths=(0.1, 0.4, 0.3, 0.2), order=(1, 2, 3, 0), confidence=0.4 / 0.7)
    good = {0: (0, 2), 1: (3, 3), 2: (1, 4)}
    votes = [
        Vote("j1", 1, 2, "first"),  # 1 over 2: agrees
        Vote("j1", 3, 2, "first"),  # 3 over 2: disagrees
        Vote("j2", 0, 1, "second"),  # 1 over 0: agrees
        Vote("j3", 0, 3, "tie"),
    ]
    outcome = round_outcome(
        "r1",
        authors,
        ranking,
        good,
        votes,
        missed={"late": 1},
        malformed={"bad": 2},
        chosen={"late": ("judge",)},
    )
    assert outcome.round_id == "r1"
    # p counts by its best placed candidate (2, second place, 1 GOOD of 4), not by candidate 0 (last, 0 of 2).
    assert outcome.answerers == {
        "q": AnswerOutcome(0, 4, 1.0),
        "p": AnswerOutcome(1, 4, 0.25),
        "r": AnswerOutcome(2, 4, None),
    }
    assert outcome.judges == {"j1": JudgeOutcome(0.5), "j2": JudgeOutcome(1.0), "j3": JudgeOutcome(None)}
    assert outcome.missed == {"late": 1} and outcome.malformed == {"bad": 2}
    assert outcome.roles()["late"] == ("judge",) and outcome.roles()["p"] == ("answer",)


def test_round_outcome_without_a_ranking_leaves_everyone_level() -> None:
    votes = [Vote("j", 0, 1, "first")]
    outcome = round_outcome("r1", ["p", "q", "p"], None, {0: (1, 2), 2: (2, 2)}, votes)
    # Level at the top of one: p by its first candidate, since none is placed better.
    assert outcome.answerers == {"p": AnswerOutcome(0, 1, 0.5), "q": AnswerOutcome(0, 1, None)}
    assert outcome.judges == {"j": JudgeOutcome(None)}
    assert RULES.answer_multiple(0, 1, None) == 0.0  # so only the checks pay or cost


# ReputationBook.adjust and bootstrapping


def test_adjust_keeps_unknown_peers_out_on_a_loss_and_lets_them_in_on_a_gain() -> None:
    book = book_with()
    assert book.adjust("u", -3.0, RULES) == 0.0 and book.adjust("u", 0.0, RULES) == 0.0
    assert "u" not in book.peers()
    assert book.adjust("u", 1.5, RULES) == pytest.approx(1.5) and book.peers() == ("u",)


def test_adjust_stays_within_the_floor_the_ceiling_and_the_locked_stake() -> None:
    book = book_with(low=5.0, high=90.0, staked=10.0)
    assert book.adjust("low", -10.0, RULES) == pytest.approx(-5.0) and book.score("low") == RULES.floor
    assert "low" in book.peers()  # known at the floor, unlike a peer never credited
    assert book.adjust("high", 50.0, RULES) == pytest.approx(10.0) and book.score("high") == RULES.ceiling
    stake = book.lock("r", "staked", "answer", RULES)
    assert book.adjust("staked", -20.0, RULES) == pytest.approx(stake.amount - 10.0)
    assert book.score("staked") == pytest.approx(stake.amount)


def test_bootstrapping_lasts_until_some_peer_holds_a_say_somewhere() -> None:
    standing = Standing()
    assert standing.bootstrapping(RULES) and has_say(standing, "low", RULES, "general")
    prove(standing, "a", "code")
    assert not standing.bootstrapping(RULES)
    # One holder does not close its domain: fewer than min_holders hold a say there, so anyone speaks.
    assert has_say(standing, "a", RULES, "code") and has_say(standing, "low", RULES, "code")


def test_a_fresh_key_speaks_only_while_no_domain_has_closed() -> None:
    # Code has no challenge items, so it stays open for good: an open domain alone must not lend a
    # stranger the network's models and routing.
    fresh = Standing()
    assert speaks(fresh, "stranger", RULES)  # the network's bootstrap
    closed = standing_with("general", friend=10.0)  # HOLDERS and friend hold general: it has closed
    assert not closed.open("general", RULES) and closed.open("code", RULES)
    assert not speaks(closed, "stranger", RULES)
    assert speaks(closed, "friend", RULES) and all(speaks(closed, h, RULES) for h in HOLDERS)
