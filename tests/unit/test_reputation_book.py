"""The reputation book: hand-computed settlements, stakes, idempotence, decay, snapshots, and its bounds under
many random rounds."""

from __future__ import annotations

import json
import random

import pytest

from reputation import (
    AnswerOutcome,
    Insufficient,
    JudgeOutcome,
    ReputationBook,
    RoundClosed,
    RoundOutcome,
    Rules,
)
from reputation.book import SLACK
from tests.support.reputation import RULES, book_with

WEEK = RULES.half_life_s


def test_new_peers_have_no_say_until_granted() -> None:
    book = ReputationBook()
    assert book.score("newcomer") == 0.0 and not book.eligible("newcomer", "answer", RULES)
    with pytest.raises(Insufficient):
        book.lock("r", "newcomer", "answer", RULES)
    assert book.grant("newcomer", 5.0, RULES) == 5.0
    assert book.eligible("newcomer", "judge", RULES)
    assert book.grant("newcomer", 500.0, RULES) == RULES.ceiling  # grants stop at the ceiling
    with pytest.raises(ValueError):
        book.grant("newcomer", -1.0, RULES)


def test_settlement_by_hand() -> None:
    book = book_with(a=50.0, b=20.0, c=20.0, d=10.0, e=10.0, f=10.0, g=100.0, h=10.0)
    stakes = {
        "a": book.lock("r", "a", "answer", RULES).amount,
        "b": book.lock("r", "b", "judge", RULES).amount,
        "c": book.lock("r", "c", "answer", RULES).amount,
        "d": book.lock("r", "d", "judge", RULES).amount,
        "e": book.lock("r", "e", "answer", RULES).amount,
        "f": book.lock("r", "f", "answer", RULES).amount,
        "g": book.lock("r", "g", "answer", RULES).amount,
    }
    assert stakes == pytest.approx({"a": 5.0, "b": 1.0, "c": 2.0, "d": 0.5, "e": 1.0, "f": 1.0, "g": 10.0})
    assert book.free("a") == pytest.approx(45.0) and book.score("a") == 50.0
    outcome = RoundOutcome(
        "r",
        answerers={
            "a": AnswerOutcome(0, 2, 1.0),  # top, all GOOD: +1 stake
            "c": AnswerOutcome(1, 2, 0.5),  # bottom, half GOOD: -1/2 stake
            "e": AnswerOutcome(0, 1, None),  # alone: 0, then 3 malformed at 1/4 each
            "f": AnswerOutcome(1, 2, 0.0),  # -1 stake, then 2 misses: capped at the stake
            "g": AnswerOutcome(0, 2, 1.0),  # +10, but already at the ceiling
            "h": AnswerOutcome(0, 2, 1.0),  # no stake in the round: untouched
        },
        judges={"b": JudgeOutcome(0.75)},  # +1/4 stake
        missed={"d": 1, "f": 2},  # d: -1/2 stake
        malformed={"e": 3},
    )
    deltas = book.settle(outcome, RULES, now=0.0, writer="w")
    expected = {"a": 5.0, "b": 0.25, "c": -1.0, "d": -0.25, "e": -0.75, "f": -1.0, "g": 0.0}
    assert deltas == pytest.approx(expected)
    assert book.score("a") == pytest.approx(55.0) and book.score("f") == pytest.approx(9.0)
    assert book.score("g") == RULES.ceiling and book.score("h") == 10.0
    assert book.stakes() == () and book.locked("a") == 0.0 and book.is_closed("r")


def test_one_peer_answering_and_judging_stakes_both() -> None:
    book = book_with(p=100.0)
    answer = book.lock("r", "p", "answer", RULES)
    judge = book.lock("r", "p", "judge", RULES)
    assert (answer.amount, judge.amount) == pytest.approx((10.0, 0.05 * 90.0))
    assert book.locked("p") == pytest.approx(14.5)
    outcome = RoundOutcome("r", {"p": AnswerOutcome(0, 3, 1.0)}, {"p": JudgeOutcome(0.0)}, missed={"p": 1})
    # +1 * 10 - 1/2 * 4.5 - 1/2 * 14.5 = 0.5; capped at the ceiling of 100.
    assert book.settle(outcome, RULES, 0.0, writer="w") == {"p": 0.0}
    book2 = book_with(p=50.0)
    book2.lock("r", "p", "answer", RULES)
    book2.lock("r", "p", "judge", RULES)
    # stakes 5 and 2.25: +5 - 1.125 - 0.5 * 7.25 = 0.25
    assert book2.settle(outcome, RULES, 0.0, writer="w") == pytest.approx({"p": 0.25})


def test_a_loss_never_goes_below_the_floor() -> None:
    rules = Rules(floor=5.0, answer_stake=1.0, writer_loss_share=1.0)
    book = ReputationBook()
    book.grant("p", 8.0, rules)
    assert book.lock("r", "p", "answer", rules).amount == 8.0
    assert book.settle(RoundOutcome("r", {"p": AnswerOutcome(1, 2, 0.0)}), rules, 0.0, writer="w") == {
        "p": -3.0
    }
    assert book.score("p") == 5.0


def test_ineligible_peers_are_refused() -> None:
    book = book_with(poor=0.5, rich=10.0)
    assert not book.eligible("poor", "judge", RULES)
    with pytest.raises(Insufficient):
        book.lock("r", "poor", "judge", RULES)
    assert book.stakes() == ()
    all_in = Rules(answer_stake=1.0)
    book.lock("r1", "rich", "answer", all_in)  # locks everything
    assert book.free("rich") == 0.0 and not book.eligible("rich", "answer", all_in)
    with pytest.raises(Insufficient):
        book.lock("r2", "rich", "judge", all_in)


def test_locking_twice_returns_the_same_stake() -> None:
    book = book_with(p=20.0)
    first = book.lock("r", "p", "answer", RULES)
    assert book.lock("r", "p", "answer", RULES) == first
    assert book.locked("p") == pytest.approx(2.0) and len(book.stakes("r")) == 1


def test_settling_or_aborting_twice_does_nothing_the_second_time() -> None:
    book = book_with(p=20.0, q=20.0)
    book.lock("r", "p", "answer", RULES)
    outcome = RoundOutcome("r", {"p": AnswerOutcome(0, 2, 1.0)})
    assert book.settle(outcome, RULES, 0.0, writer="w") == pytest.approx({"p": 2.0})
    before = book.snapshot()
    assert book.settle(outcome, RULES, WEEK, writer="w") == {}  # a replay, even later, changes nothing at all
    assert book.snapshot() == before and book.score("p") == pytest.approx(22.0)
    assert not book.abort("r")  # settled is closed
    with pytest.raises(RoundClosed):
        book.lock("r", "q", "judge", RULES)  # a late stake would never come back
    book.lock("s", "q", "judge", RULES)
    assert book.abort("s") and book.score("q") == 20.0 and book.locked("q") == 0.0
    assert not book.abort("s")
    assert book.settle(RoundOutcome("s", judges={"q": JudgeOutcome(1.0)}), RULES, 0.0, writer="w") == {}
    assert book.score("q") == 20.0


def test_decay_moves_toward_the_prior_with_the_half_life() -> None:
    book = book_with(high=30.0, low=2.0)
    book.decay(WEEK, RULES)
    assert book.score("high") == pytest.approx(20.0) and book.score("low") == pytest.approx(6.0)
    book.decay(WEEK / 2, RULES)  # back in time: nothing
    assert book.score("high") == pytest.approx(20.0)
    book.decay(2 * WEEK, RULES)
    assert book.score("high") == pytest.approx(15.0) and book.score("low") == pytest.approx(8.0)
    assert book.score("stranger") == 0.0 and "stranger" not in book.peers()  # decay grants nobody anything


def test_decay_never_uncovers_a_stake() -> None:
    all_in = Rules(answer_stake=1.0)
    book = book_with(p=50.0)
    book.lock("r", "p", "answer", all_in)
    book.decay(WEEK, all_in)
    assert book.score("p") == 50.0 and book.locked("p") == 50.0


def test_settle_decays_to_now_first() -> None:
    book = book_with(p=30.0)
    book.lock("r", "p", "answer", RULES)  # stake 3
    assert book.settle(RoundOutcome("r", {"p": AnswerOutcome(0, 1)}), RULES, now=WEEK, writer="w") == {
        "p": 0.0
    }
    assert book.score("p") == pytest.approx(20.0)


def test_snapshot_round_trip() -> None:
    book = book_with(a=40.0, b=12.0)
    book.lock("r1", "a", "answer", RULES)
    book.lock("r1", "b", "judge", RULES)
    book.lock("r2", "a", "judge", RULES)
    book.settle(RoundOutcome("r0"), RULES, 100.0, writer="w")
    data = json.loads(json.dumps(book.snapshot()))
    restored = ReputationBook.from_snapshot(data)
    assert restored == book and restored.snapshot() == book.snapshot()
    assert restored.is_closed("r0") and restored.open_rounds() == {"r1", "r2"}
    outcome = RoundOutcome("r1", {"a": AnswerOutcome(0, 2, 1.0)}, {"b": JudgeOutcome(0.0)})
    assert restored.settle(outcome, RULES, 200.0, writer="w") == book.settle(
        outcome, RULES, 200.0, writer="w"
    )
    assert restored == book


def test_one_writer_takes_at_most_its_share_of_a_peer_and_half_of_it_comes_back_a_day_later() -> None:
    rules = Rules(half_life_s=1e15)  # decay aside
    day = rules.writer_loss_half_life_s
    book = ReputationBook()
    book.grant("p", 20.0, rules)
    book.decay(0.0, rules)

    def faulty(round_id: str, writer: str, at: float) -> float:
        """A round that costs p its whole stake, 10% of its free reputation, as `writer` tells it."""
        book.lock(round_id, "p", "answer", rules)
        return book.settle(RoundOutcome(round_id, malformed={"p": 1}), rules, at, writer=writer).get("p", 0.0)

    assert book.allowance("w", "p", 0.0, rules) == pytest.approx(2.0)
    assert faulty("r1", "w", 0.0) == pytest.approx(-2.0)  # the stake, 10% of 20: all w may take
    assert faulty("r2", "w", 0.0) == 0.0 and book.allowance("w", "p", 0.0, rules) == 0.0
    assert faulty("r3", "v", 0.0) == pytest.approx(-1.8)  # another writer has a share of its own
    # A day later w's takings count half (5%): it may take p down to 90% of what the 5% began from, which
    # is 16.2 / 0.95, so 16.2 * (1 - 0.9 / 0.95).
    restored = ReputationBook.from_snapshot(json.loads(json.dumps(book.snapshot())))
    left = 16.2 * (1 - 0.9 / 0.95)
    assert restored == book and restored.allowance("w", "p", day, rules) == pytest.approx(left)
    assert faulty("r4", "w", day) == pytest.approx(-left)
    # A gain is never bounded.
    book.lock("r5", "p", "answer", rules)
    assert book.settle(RoundOutcome("r5", {"p": AnswerOutcome(0, 2, 1.0)}), rules, day, writer="w")["p"] > 0


def test_a_broken_snapshot_is_refused() -> None:
    data = book_with(a=10.0).snapshot()
    data["stakes"] = [{"round_id": "r", "peer": "a", "role": "answer", "amount": 11.0}]
    with pytest.raises(ValueError):
        ReputationBook.from_snapshot(data)
    data["stakes"] = [{"round_id": "r", "peer": "a", "role": "answer", "amount": 1.0}]
    data["closed"] = ["r"]
    with pytest.raises(ValueError):
        ReputationBook.from_snapshot(data)


def test_a_crash_mid_round_neither_loses_nor_duplicates_a_stake() -> None:
    book = book_with(p=20.0)
    stake = book.lock("r", "p", "answer", RULES)
    restarted = ReputationBook.from_snapshot(book.snapshot())  # the node died with the round open
    assert restarted.lock("r", "p", "answer", RULES) == stake  # the replayed lock is the same stake
    assert restarted.locked("p") == pytest.approx(2.0)
    for round_id in restarted.open_rounds():
        restarted.abort(round_id)
    assert restarted.score("p") == 20.0 and restarted.stakes() == ()


def random_outcome(rng: random.Random, round_id: str, staked: list[tuple[str, str]]) -> RoundOutcome:
    answerers = [p for p, role in staked if role == "answer"]
    order = rng.sample(answerers, len(answerers))
    good = lambda: rng.choice([None, rng.random(), 0.0, 1.0])  # noqa: E731
    return RoundOutcome(
        round_id,
        answerers={p: AnswerOutcome(order.index(p), len(order), good()) for p in answerers},
        judges={p: JudgeOutcome(good()) for p, role in staked if role == "judge"},
        missed={p: rng.choice([0, 0, 0, 1, 3]) for p, _ in staked},
        malformed={p: rng.choice([0, 0, 0, 1, 5]) for p, _ in staked},
    )


def check_bounds(book: ReputationBook, rules: Rules) -> None:
    for peer in book.peers():
        score, locked = book.score(peer), book.locked(peer)
        assert 0.0 <= score <= rules.ceiling
        assert 0.0 <= locked <= score * (1 + SLACK)


@pytest.mark.parametrize(
    "rules",
    [
        RULES,
        Rules(answer_stake=1.0, judge_stake=0.9, half_life_s=50.0),
        Rules(writer_loss_share=0.1, writer_loss_half_life_s=300.0),
    ],
)
def test_bounds_hold_over_many_random_rounds(rules: Rules) -> None:
    rng = random.Random(20240601)
    peers = [f"p{i}" for i in range(12)]
    book = ReputationBook()
    for peer in peers[:10]:  # two never granted: they must never get a stake
        book.grant(peer, rng.uniform(0.5, rules.ceiling), rules)
    now, open_rounds, refused = 0.0, {}, 0
    for n in range(10_000):
        now += rng.expovariate(1 / 30)
        round_id = f"r{n}"
        staked: list[tuple[str, str]] = []
        for peer in rng.sample(peers, 5):
            role = rng.choice(["answer", "judge"])
            try:
                before = book.locked(peer)
                stake = book.lock(round_id, peer, role, rules)
                assert book.lock(round_id, peer, role, rules) == stake  # a replayed lock
                assert book.locked(peer) == pytest.approx(before + stake.amount)
                staked.append((peer, role))
            except Insufficient:
                refused += 1
                assert not book.eligible(peer, role, rules)
        open_rounds[round_id] = staked
        check_bounds(book, rules)
        # Close a random open round (rounds overlap), by settling it or, now and then, aborting it.
        closing = rng.choice(sorted(open_rounds))
        staked = open_rounds.pop(closing)
        stakes = {(s.peer, s.role): s.amount for s in book.stakes(closing)}
        if rng.random() < 0.1:
            before = {p: book.score(p) for p in peers}
            assert book.abort(closing)
            assert {p: book.score(p) for p in peers} == before
        else:
            writer = rng.choice(peers)
            book.decay(now, rules)  # as settle does first, so the allowances are the ones it sees
            allowed = {p: book.allowance(writer, p, now, rules) for p in peers}
            deltas = book.settle(random_outcome(rng, closing, staked), rules, now, writer=writer)
            for peer, delta in deltas.items():  # a round costs at most the stake, and the writer's allowance
                lost = sum(a for (p, _), a in stakes.items() if p == peer)
                assert delta >= -min(lost, allowed[peer]) * (1 + SLACK) - 1e-12
        assert book.stakes(closing) == () and book.is_closed(closing)
        check_bounds(book, rules)
        if n % 1000 == 0:
            book = ReputationBook.from_snapshot(book.snapshot())
    for round_id in list(open_rounds):
        book.abort(round_id)
    assert book.stakes() == () and all(book.locked(p) == 0.0 for p in peers)
    assert book.score("p10") == book.score("p11") == 0.0
    assert refused > 0  # the minimum was actually exercised
