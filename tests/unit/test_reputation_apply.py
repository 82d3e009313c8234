"""Ledger entries applied to the book: challenges (bootstrap, say, idempotence, hand-computed credits and
penalties), rounds (the gateway's say, stakes only for the eligible, missed deadlines, a malformed
reveal under the default rules), round outcomes built from a ranking, and the book's direct adjustments."""

from __future__ import annotations

import pytest

from ranking.bradley_terry import Ranking, Vote
from reputation import (
    AnswerOutcome,
    ChallengeAnswer,
    ChallengeOutcome,
    JudgeOutcome,
    ReputationBook,
    RoundOutcome,
    Rules,
    apply_challenge,
    apply_round,
    has_say,
    round_outcome,
)
from tests.support.reputation import RULES, book_with

MC = 0.25  # a blind guess's odds on a 4-option question
YEAR = 365 * 24 * 3600.0


def challenge(
    challenge_id: str, challenger: str, peer: str, *correct: bool, chance: float = MC
) -> ChallengeOutcome:
    answers = tuple(ChallengeAnswer(f"{challenge_id}/{i}", right, chance) for i, right in enumerate(correct))
    return ChallengeOutcome(challenge_id, challenger, peer, answers)


# Rules.challenge_change


def test_challenge_change_by_hand() -> None:
    assert RULES.challenge_change(True, MC, 10.0) == pytest.approx(2.0 * 0.75)
    assert RULES.challenge_change(False, MC, 10.0) == pytest.approx(-(0.1 * 10.0 + 2.0 * 0.25))
    # A free answer can't be guessed: right earns the whole credit, wrong costs only the share of the score.
    assert RULES.challenge_change(True, 0.0, 50.0) == pytest.approx(2.0)
    assert RULES.challenge_change(False, 0.0, 50.0) == pytest.approx(-5.0)
    for chance in (1.0, -0.1):
        with pytest.raises(ValueError):
            RULES.challenge_change(True, chance, 10.0)


@pytest.mark.parametrize("score", [0.5, 1.0, 10.0, 50.0, 100.0])
def test_blind_guessing_on_multiple_choice_loses_on_average(score: float) -> None:
    expected = MC * RULES.challenge_change(True, MC, score) + (1 - MC) * RULES.challenge_change(
        False, MC, score
    )
    assert expected < 0
    # The chance-adjusted credit cancels the guesses' share exactly: what is left is the share of the score.
    assert expected == pytest.approx(-(1 - MC) * RULES.challenge_penalty * score)


# apply_challenge


def test_an_empty_book_takes_a_first_challenge_from_anyone() -> None:
    book = ReputationBook()
    assert book.bootstrapping(RULES) and has_say(book, "stranger", RULES)
    delta = apply_challenge(book, challenge("c1", "stranger", "a", True, True), RULES, 0.0)
    assert delta == pytest.approx(3.0) and book.score("a") == pytest.approx(3.0)
    assert book.eligible("a", "answer", RULES) and not book.bootstrapping(RULES)


def test_a_peer_with_no_say_earns_only_from_a_challenge_answered_right_in_full() -> None:
    book = book_with(judge=20.0)
    lucky = apply_challenge(book, challenge("c1", "judge", "sybil", True, False, chance=0.0), RULES, 0.0)
    assert lucky == 0 and book.score("sybil") == 0 and "sybil" not in book.peers()
    whole = apply_challenge(book, challenge("c2", "judge", "sybil", True, True, chance=0.0), RULES, 0.0)
    assert whole == pytest.approx(2 * RULES.challenge_credit)
    # Once it has a say, each right answer counts on its own.
    mixed = apply_challenge(book, challenge("c3", "judge", "sybil", True, False, chance=0.0), RULES, 0.0)
    assert mixed == pytest.approx(
        RULES.challenge_credit - RULES.challenge_penalty * (4 + RULES.challenge_credit)
    )


def test_a_peer_that_is_known_but_not_eligible_does_not_end_the_bootstrap() -> None:
    book = book_with(low=RULES.min_free / 2)
    assert book.bootstrapping(RULES)
    assert apply_challenge(book, challenge("c1", "stranger", "a", True), RULES, 0.0) == pytest.approx(1.5)


def test_once_a_peer_is_eligible_a_challenger_with_no_say_changes_nothing() -> None:
    book = book_with(a=10.0)
    assert not book.bootstrapping(RULES) and not has_say(book, "stranger", RULES)
    assert apply_challenge(book, challenge("c1", "stranger", "b", True, True), RULES, 0.0) == 0.0
    assert book.score("b") == 0.0 and "b" not in book.peers()
    # Closed all the same: replayed once its challenger has a say, it still changes nothing.
    book.grant("stranger", 10.0, RULES)
    assert apply_challenge(book, challenge("c1", "stranger", "b", True, True), RULES, 0.0) == 0.0
    # The same challenge from a challenger with a say counts.
    assert apply_challenge(book, challenge("c2", "a", "b", True, True), RULES, 0.0) == pytest.approx(3.0)


@pytest.mark.parametrize("scores", [{}, {"a": 10.0}])
def test_a_self_challenge_changes_nothing(scores: dict[str, float]) -> None:
    book = book_with(**scores)
    before = book.score("a")
    assert apply_challenge(book, challenge("c1", "a", "a", True, True, True), RULES, 0.0) == 0.0
    assert book.score("a") == before


def test_a_challenge_applied_twice_counts_once() -> None:
    book = book_with(a=10.0)
    assert apply_challenge(book, challenge("c1", "a", "b", True), RULES, 0.0) == pytest.approx(1.5)
    assert apply_challenge(book, challenge("c1", "a", "b", True), RULES, 0.0) == 0.0
    assert book.score("b") == pytest.approx(1.5) and book.is_closed("c1")


def test_a_failed_challenge_leaves_an_unknown_peer_unknown() -> None:
    book = book_with(a=10.0, slashed=0.0)
    assert apply_challenge(book, challenge("c1", "a", "b", False, False, False), RULES, 0.0) == 0.0
    assert book.score("b") == 0.0 and "b" not in book.peers()
    book.decay(YEAR, RULES)
    assert book.score("b") == 0.0 and "b" not in book.peers()
    # A known peer at 0 does decay up toward the prior: the reason a failure must not make b known.
    assert book.score("slashed") == pytest.approx(RULES.prior, rel=1e-6)


def test_challenge_answers_count_one_after_another_by_hand() -> None:
    book = book_with(a=10.0, b=10.0)
    # 10 + 1.5 = 11.5, then - (1.15 + 0.5) = 9.85, then - (0.985 + 0.5) = 8.365.
    delta = apply_challenge(book, challenge("c1", "a", "b", True, False, False), RULES, 0.0)
    assert delta == pytest.approx(8.365 - 10.0) and book.score("b") == pytest.approx(8.365)


def test_a_peer_that_keeps_failing_loses_its_eligibility() -> None:
    book = book_with(a=10.0, c=10.0, d=10.0, b=10.0)
    scores = [book.score("b")]
    for k, challenger in enumerate("acd"):  # no one writer may take more than a share of b
        apply_challenge(book, challenge(f"c{k}", challenger, "b", False, False, False), RULES, 0.0)
        scores.append(book.score("b"))
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == len(scores)
    # Each wrong answer maps s to 0.9 s - 0.5, so s_n = 0.9^n (s_0 + 5) - 5.
    assert scores[2] == pytest.approx(0.9**6 * 15 - 5) and scores[2] > RULES.min_free
    assert scores[3] == pytest.approx(0.9**9 * 15 - 5) and scores[3] < RULES.min_free
    assert not book.eligible("b", "answer", RULES) and not has_say(book, "b", RULES)


def test_one_challenger_takes_at_most_its_share_of_a_peer() -> None:
    rules = Rules()
    book = ReputationBook()
    for peer in ("a", "c", "b"):
        book.grant(peer, 10.0, rules)
    book.decay(0.0, rules)
    # Ten wrong answers would cost b 65% of its score; one challenger may take 10% of it.
    wrong = (False,) * 10
    assert apply_challenge(book, challenge("c1", "a", "b", *wrong, chance=0.0), rules, 0.0) == pytest.approx(
        -1.0
    )
    assert apply_challenge(book, challenge("c2", "a", "b", *wrong, chance=0.0), rules, 0.0) == 0.0
    assert apply_challenge(book, challenge("c3", "c", "b", *wrong, chance=0.0), rules, 0.0) == pytest.approx(
        -0.9
    )
    assert apply_challenge(book, challenge("c4", "a", "b", True, chance=0.0), rules, 0.0) == pytest.approx(
        2.0
    )


# apply_round


def test_a_round_from_a_gateway_with_no_say_closes_with_no_change() -> None:
    book = book_with(a=10.0, b=10.0)
    outcome = RoundOutcome("r1", {"a": AnswerOutcome(0, 2, 1.0), "b": AnswerOutcome(1, 2, 0.0)})
    assert apply_round(book, "nobody", outcome, RULES, 0.0) == {}
    assert book.score("a") == 10.0 and book.score("b") == 10.0
    assert book.is_closed("r1") and book.stakes() == ()
    assert apply_round(book, "a", outcome, RULES, 0.0) == {}  # closed: no second chance
    # The same round from a gateway with a say moves the scores.
    moved = RoundOutcome("r2", outcome.answerers)
    assert apply_round(book, "a", moved, RULES, 0.0) == pytest.approx({"a": 1.0, "b": -1.0})


def test_a_round_stakes_only_eligible_peers() -> None:
    book = book_with(a=10.0, j=10.0, low=0.5)
    outcome = RoundOutcome(
        "r1",
        # low placed first with every check GOOD, a last with every check BAD.
        {"low": AnswerOutcome(0, 2, 1.0), "a": AnswerOutcome(1, 2, 0.0)},
        {"j": JudgeOutcome(1.0), "unknown": JudgeOutcome(1.0)},
    )
    deltas = apply_round(book, "a", outcome, RULES, 0.0)
    # a staked 1.0 and lost it all (-0.5 for the place, -0.5 for the checks); j staked 0.5 and won half of it.
    assert deltas == pytest.approx({"a": -1.0, "j": 0.25})
    assert book.score("low") == 0.5 and book.score("unknown") == 0.0 and "unknown" not in book.peers()
    assert book.stakes() == ()


def test_a_peer_chosen_but_missing_loses_part_of_its_stake() -> None:
    book = book_with(a=10.0, m=10.0, k=10.0)
    outcome = RoundOutcome(
        "r1",
        {"a": AnswerOutcome(0, 1)},
        missed={"m": 1, "k": 1},
        chosen={"m": ("answer",), "k": ("judge",)},
    )
    deltas = apply_round(book, "a", outcome, RULES, 0.0)
    # Half of each stake: 0.5 of m's answer stake of 1.0, 0.25 of k's judge stake of 0.5.
    assert deltas == pytest.approx({"a": 0.0, "m": -0.5, "k": -0.25})
    assert book.score("m") == pytest.approx(9.5) and book.score("k") == pytest.approx(9.75)


def test_with_the_default_rules_a_copycat_loses_its_whole_answer_stake() -> None:
    # A copycat's reveal does not match its commitment: one malformed message, and no candidate.
    outcome = RoundOutcome(
        "r1", {"g": AnswerOutcome(0, 1)}, malformed={"copycat": 1}, chosen={"copycat": ("answer",)}
    )
    rules = Rules()
    book = ReputationBook()
    for peer in ("g", "copycat"):
        book.grant(peer, 10.0, rules)
    book.decay(0.0, rules)
    stake = rules.answer_stake * 10.0
    assert apply_round(book, "g", outcome, rules, 0.0) == pytest.approx({"g": 0.0, "copycat": -stake})
    assert book.score("copycat") == pytest.approx(10.0 - stake) and book.stakes() == ()
    # Under the rules the figures above are worked out with, the same round costs a quarter of it.
    book = book_with(g=10.0, copycat=10.0)
    assert apply_round(book, "g", outcome, RULES, 0.0)["copycat"] == pytest.approx(-0.25 * stake)


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


def test_bootstrapping_lasts_until_some_peer_is_eligible() -> None:
    book = ReputationBook()
    assert book.bootstrapping(RULES)
    book.grant("low", RULES.min_free / 2, RULES)
    assert book.bootstrapping(RULES) and has_say(
        book, "low", RULES
    )  # while nobody is eligible, anyone speaks
    book.grant("a", RULES.min_free, RULES)
    assert not book.bootstrapping(RULES)
    assert has_say(book, "a", RULES) and not has_say(book, "low", RULES)
