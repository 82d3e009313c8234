"""Can attackers buy influence over consensus rounds? A seeded simulation of the reputation rules.

    python -m bench.attacks [--rounds 240] [--seed 0] [--testnet-rounds 0] [--no-holes]

After the simulation and the ledger's cost on a testnet, the hostile-peer attacks of
`bench.holes` run for real, each row saying what the attacker gained before its fix and now.

Nothing here is simulated that the network decides: the reputation book with
the default `Rules()` (`reputation.apply.apply_round` / `apply_challenge`),
the pair schedule and its assignment to judges (`ranking.schedule`), the
winner (`ranking.aggregate.decide`) and the round's outcome
(`reputation.outcome.round_outcome`) are the real code. Only the peers are
simulated, with no network and no models.

The model. A round's question is multiple choice with 4 options, one right
(what users ask). A challenge's questions are free answers, as node.challenges
asks (chance 0: a blind guess earns nothing back). Each peer has an accuracy
on rounds (its odds of saying the right letter; otherwise it says one of the
wrong letters at random), an accuracy on free answers, and a judging skill.
An honest peer knows the answer to a share k of questions and guesses the
rest, so its accuracy is k + (1 - k) / 4 on rounds and k + (1 - k) * `LUCK`
on free answers, where `LUCK` is the odds of a lucky guess at a free answer.
A peer with no capability (Sybils, random answerers, copycats) has k = 0: it
is right on a free answer with odds `LUCK` only. An honest judge shown a
right and a wrong answer prefers the right one with probability `skill`;
otherwise, and for two answers equally right or wrong, it says U with
probability `UNSURE` and else picks A or B at random. Its GOOD/BAD check says
GOOD to a right answer with probability `skill` and to a wrong one with
probability 1 - skill. Candidates that say
the same letter pool their strength (`said` is the letter).

Every round `ANSWERERS` peers are drawn among the eligible ones, and every
eligible peer judges (never a pair holding its own answer), its votes weighed
by its score, as the node weighs them (all alike while nobody is eligible);
the gateway is an eligible peer too. Before each round, proof of capability
as node.challenges schedules it: every `CHALLENGE_EVERY` rounds each peer that
is not eligible is challenged, and every round each eligible peer is
spot-checked with probability `SPOT_CHECK`; a challenge is `CHALLENGE_ITEMS`
questions graded honestly by a random eligible peer (by anyone while nobody
is, the bootstrap). The clock advances `ROUND_S` seconds a round. Every peer
starts unknown. The baseline without reputation ("flat") runs the same
questions, with every peer answering the same letter to each, but draws the
answerers and judges among all peers and weighs every vote 1.

The attackers, each class in its own scenario beside the same honest peers:
  sybil     50 identities with no capability: every round's answer wrong, random votes and
            checks, and right on a challenge's free answer only by luck (`LUCK`).
  sybil-guess  the same 50 identities, but guessing: right one time in 4 on rounds, and on
            challenges by luck alone, as there is no option to guess among.
  random    peers that answer a random letter, are right on challenges by luck alone, and
            vote and check at random.
  copycat   peers with no model that copy others' answers; commit-reveal rejects the copy (a
            malformed reveal: no candidate, and the whole stake lost if it had one). As judges
            they copy the crowd: they prefer the letter more candidates gave, and check GOOD
            only the most common letters. Challenges have no crowd to copy, so they are right
            by luck alone.
  collusion capable peers (answering honestly, passing challenges) that, whenever their
            favoured member has a candidate, vote for it in every pair and check it GOOD and
            every other BAD; they judge honestly otherwise.
  lazy      capable answerers that, as judges, always vote A and check GOOD.

Printed per scenario and window of rounds, with reputation ("rep") and
without ("flat"): the attackers' share of influence (the weight of their
votes over the weight of all votes), of the candidates and of the winning
answers, and the accuracy of the consensus (the winner is right; a round with
no candidate counts as wrong).
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bench import holes
from bench import ledger as ledger_cost
from ranking import schedule
from ranking.aggregate import decide
from ranking.bradley_terry import Ranking, Vote
from ranking.judging import Preference
from reputation import ChallengeAnswer, ChallengeOutcome, Rules, Standing, apply_challenge, apply_round
from reputation.outcome import round_outcome

LETTERS = ("A", "B", "C", "D")
CHANCE = 1 / len(LETTERS)  # a blind guess's odds on a round's question
# A challenge asks free answers (node.challenges): a blind guess earns nothing back, and is right only by
# luck, with these odds.
FREE_CHANCE = 0.0
LUCK = 0.01
HONEST_PEERS = 8
HONEST_ACCURACY = (0.35, 0.75)  # spread evenly over the honest peers, as is their skill
HONEST_SKILL = (0.6, 0.8)
ATTACKERS = 4  # peers in each attacking class but the Sybils
SYBILS = 50
# Accuracy and skill of the attackers that are capable: colluders and lazy judges.
CAPABLE_ACCURACY = 0.55
CAPABLE_SKILL = 0.7
UNSURE = 0.2  # how often a judge that can't tell two answers apart says U
ANSWERERS = 4
ROUND_S = 30.0
# As node.challenges does by default: a beat every 60 s (2 rounds) challenges each peer that isn't
# eligible, and each eligible one with odds 0.1 (0.05 a round), with 2 questions. There every node with a
# say challenges on its own beat; here a single challenger does, so peers get fewer challenges.
CHALLENGE_EVERY = 2
CHALLENGE_ITEMS = 5  # as node.challenges asks
SPOT_CHECK = 0.05
ROUNDS = 240
WINDOWS = 4
RULES = Rules()

Kind = Literal["honest", "sybil", "random", "copycat", "colluder", "lazy"]


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    kind: Kind
    accuracy: float  # odds of answering a round's question (4 options) right
    free_accuracy: float  # odds of answering a challenge's question (a free answer) right
    skill: float  # odds of telling a right answer from a wrong one as a judge


def _capable(name: str, kind: Kind, accuracy: float, skill: float) -> Peer:
    """A peer that knows the answer to a share of the questions and guesses the rest, with `accuracy` on
    4-option questions: it knows (accuracy - 1/4) / (3/4) of them."""
    knows = (accuracy - CHANCE) / (1 - CHANCE)
    if not 0 <= knows <= 1:
        raise ValueError(f"a capable peer's accuracy lies in [{CHANCE}, 1], got {accuracy}")
    return Peer(name, kind, accuracy, knows + (1 - knows) * LUCK, skill)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    attackers: tuple[Peer, ...]

    @property
    def favoured(self) -> str | None:
        """The colluders' favoured member, whose candidate they vote for."""
        colluders = [p.name for p in self.attackers if p.kind == "colluder"]
        return colluders[0] if colluders else None


@dataclass(frozen=True, slots=True)
class Window:
    """Rounds first..last: the attackers' shares (None where there was nothing to share) and accuracy."""

    first: int
    last: int
    influence: float | None
    candidates: float | None
    wins: float | None
    accuracy: float


@dataclass(frozen=True, slots=True)
class Run:
    """One scenario run with or without reputation; `scores` and `eligible` are each peer's score and
    the peers eligible at the end (0 and none without reputation)."""

    windows: tuple[Window, ...]
    overall: Window
    scores: dict[str, float]
    eligible: frozenset[str]


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: Scenario
    weighted: Run
    flat: Run


@dataclass(frozen=True, slots=True)
class _Tally:
    """One round, as the windows count it."""

    attacker_weight: float
    weight: float
    attacker_candidates: int
    candidates: int
    attacker_won: bool | None  # None: no winner
    right: bool


def _spread(low: float, high: float, i: int, n: int) -> float:
    return low + (high - low) * i / (n - 1)


HONEST = tuple(
    _capable(
        f"honest-{i}",
        "honest",
        _spread(*HONEST_ACCURACY, i, HONEST_PEERS),
        _spread(*HONEST_SKILL, i, HONEST_PEERS),
    )
    for i in range(HONEST_PEERS)
)


def scenarios() -> tuple[Scenario, ...]:
    def group(kind: Kind, n: int, accuracy: float, skill: float) -> tuple[Peer, ...]:
        """Peers with no capability: `accuracy` on rounds (0 or a guess's), luck alone on free answers."""
        return tuple(Peer(f"{kind}-{i:02d}", kind, accuracy, LUCK, skill) for i in range(n))

    def capable(kind: Kind) -> tuple[Peer, ...]:
        return tuple(
            _capable(f"{kind}-{i:02d}", kind, CAPABLE_ACCURACY, CAPABLE_SKILL) for i in range(ATTACKERS)
        )

    return (
        Scenario("honest", "honest peers only: the reference", ()),
        Scenario("sybil", f"{SYBILS} Sybil identities with no capability", group("sybil", SYBILS, 0.0, 0.5)),
        Scenario(
            "sybil-guess",
            f"{SYBILS} Sybil identities with no capability that guess (right 1 time in 4 on rounds)",
            group("sybil", SYBILS, CHANCE, 0.5),
        ),
        Scenario(
            "random",
            f"{ATTACKERS} peers answering and judging at random",
            group("random", ATTACKERS, CHANCE, 0.5),
        ),
        Scenario(
            "copycat",
            f"{ATTACKERS} copycats: copied answers rejected by commit-reveal, votes copying the crowd",
            group("copycat", ATTACKERS, CHANCE, 0.5),
        ),
        Scenario(
            "collusion",
            f"{ATTACKERS} capable judges in a bloc, always favouring colluder-00",
            capable("colluder"),
        ),
        Scenario(
            "lazy",
            f"{ATTACKERS} capable answerers judging lazily: always A, always GOOD",
            capable("lazy"),
        ),
    )


def _answer(peer: Peer, right: str, rng: random.Random) -> str:
    if rng.random() < peer.accuracy:
        return right
    return rng.choice([letter for letter in LETTERS if letter != right])


def _prefer(
    judge: Peer,
    first: int,
    second: int,
    said: Sequence[str],
    right: str,
    favoured: int | None,
    rng: random.Random,
) -> Preference:
    if judge.kind == "lazy":
        return "A"
    if judge.kind == "colluder" and favoured in (first, second):
        return "A" if favoured == first else "B"
    if judge.kind == "copycat":
        crowd = Counter(said)
        a, b = crowd[said[first]], crowd[said[second]]
        return "A" if a > b else "B" if b > a else "U"
    if judge.kind in ("sybil", "random"):
        return rng.choice(("A", "B"))
    a_right, b_right = said[first] == right, said[second] == right
    if a_right != b_right and rng.random() < judge.skill:
        return "A" if a_right else "B"
    return "U" if rng.random() < UNSURE else rng.choice(("A", "B"))


def _check(
    judge: Peer, cid: int, said: Sequence[str], right: str, favoured: int | None, rng: random.Random
) -> bool:
    """Whether the judge finds candidate cid GOOD."""
    if judge.kind == "lazy":
        return True
    if judge.kind == "colluder" and favoured is not None:
        return cid == favoured
    if judge.kind == "copycat":
        crowd = Counter(said)
        return crowd[said[cid]] == max(crowd.values())
    if judge.kind in ("sybil", "random"):
        return rng.random() < 0.5
    return rng.random() < (judge.skill if said[cid] == right else 1 - judge.skill)


def _challenges(book: Standing, everyone: Sequence[Peer], r: int, at: float, rng: random.Random) -> None:
    """Round r's challenges: of every peer that isn't eligible, every `CHALLENGE_EVERY` rounds, and of a
    few eligible ones at random."""
    unproven = [p for p in everyone if not book.eligible(p.name, "answer", RULES)]
    # Shuffled, so that no peer is always the first one the bootstrap credits.
    due = rng.sample(unproven, len(unproven)) if (r - 1) % CHALLENGE_EVERY == 0 else []
    due += [p for p in everyone if p not in unproven and rng.random() < SPOT_CHECK]
    for k, peer in enumerate(due):
        # Challengers are picked as each challenge comes: the first ones passed end the bootstrap.
        pool = everyone if book.bootstrapping(RULES) else _eligible(book, everyone)
        challengers = [p for p in pool if p is not peer]
        if not challengers:
            continue
        answers = tuple(
            ChallengeAnswer(f"challenge-{r}-{k}/{i}", rng.random() < peer.free_accuracy, FREE_CHANCE)
            for i in range(CHALLENGE_ITEMS)
        )
        challenge = ChallengeOutcome(f"challenge-{r}-{k}", rng.choice(challengers).name, peer.name, answers)
        apply_challenge(book, challenge, RULES, at)


def _eligible(book: Standing, everyone: Sequence[Peer]) -> list[Peer]:
    return [p for p in everyone if book.eligible(p.name, "answer", RULES)]


def _judge(
    round_id: str,
    judges: Sequence[Peer],
    authors: Sequence[str],
    said: Sequence[str],
    right: str,
    favoured: int | None,
    rng: random.Random,
) -> tuple[list[Vote], dict[int, tuple[int, int]]]:
    """The votes on the scheduled pairs and the (GOOD, checks) of every candidate, as the node gathers
    them: each judge compares the pairs assigned to it and checks every candidate but its own."""
    votes: list[Vote] = []
    good: dict[int, tuple[int, int]] = {}
    tasks = schedule.assign(
        schedule.schedule(len(authors), round_id), [j.name for j in judges], authors, round_id
    )
    for judge in judges:
        for c in tasks.tasks[judge.name]:
            preference = _prefer(judge, c.first, c.second, said, right, favoured, rng)
            votes.append(Vote.from_preference(judge.name, c.first, c.second, preference))
        for cid, author in enumerate(authors):
            if author != judge.name:
                yes, total = good.get(cid, (0, 0))
                good[cid] = (yes + _check(judge, cid, said, right, favoured, rng), total + 1)
    return votes, good


def _run(scenario: Scenario, rounds: int, seed: int, weighted: bool) -> Run:
    everyone = (*HONEST, *scenario.attackers)
    attackers = {p.name for p in scenario.attackers}
    book = Standing()
    rng = random.Random(f"{seed}/{scenario.name}/{'rep' if weighted else 'flat'}")
    tallies: list[_Tally] = []
    for r in range(1, rounds + 1):
        at, round_id = r * ROUND_S, f"round-{r}"
        # Seeded by the round alone, so both runs ask the same questions and get the same letters.
        question = random.Random(f"{seed}/{scenario.name}/{r}")
        right = question.choice(LETTERS)
        letters = {p.name: _answer(p, right, question) for p in everyone}
        if weighted:
            _challenges(book, everyone, r, at, rng)
        pool = _eligible(book, everyone) if weighted and not book.bootstrapping(RULES) else list(everyone)
        chosen = rng.sample(pool, min(ANSWERERS, len(pool)))
        # A copycat's copy does not match its commitment: its reveal is refused and it has no candidate.
        authors = [p.name for p in chosen if p.kind != "copycat"]
        copycats = [p.name for p in chosen if p.kind == "copycat"]
        said = [letters[a] for a in authors]
        favoured = authors.index(scenario.favoured) if scenario.favoured in authors else None
        votes, good = (
            _judge(round_id, pool, authors, said, right, favoured, rng) if len(authors) > 1 else ([], {})
        )
        # As the node weighs votes: by score, all alike while nobody has one.
        flat = not weighted or book.bootstrapping(RULES)
        weights = {p.name: 1.0 if flat else book.score(p.name) for p in pool}
        winner: int | None = 0 if authors else None  # without votes, the answer routed first
        ranking: Ranking | None = None
        if votes:
            decision = decide(said, votes, weights, good, range(len(authors)))
            winner, ranking = decision.winner, decision.ranking
        tallies.append(
            _Tally(
                attacker_weight=sum(weights[v.judge] for v in votes if v.judge in attackers),
                weight=sum(weights[v.judge] for v in votes),
                attacker_candidates=sum(a in attackers for a in authors),
                candidates=len(authors),
                attacker_won=None if winner is None else authors[winner] in attackers,
                right=winner is not None and said[winner] == right,
            )
        )
        if weighted:
            outcome = round_outcome(
                round_id,
                authors,
                ranking,
                good,
                votes,
                malformed=dict.fromkeys(copycats, 1),
                chosen={c: ("answer",) for c in copycats},
            )
            apply_round(book, rng.choice(pool).name, outcome, RULES, at, "general")
    bounds = [(rounds * k // WINDOWS + 1, rounds * (k + 1) // WINDOWS) for k in range(WINDOWS)]
    return Run(
        windows=tuple(_window(tallies, first, last) for first, last in bounds if first <= last),
        overall=_window(tallies, 1, rounds),
        scores={p.name: book.score(p.name) for p in everyone},
        eligible=frozenset(p.name for p in _eligible(book, everyone)),
    )


def _window(tallies: Sequence[_Tally], first: int, last: int) -> Window:
    def share(part: float, whole: float) -> float | None:
        return part / whole if whole else None

    rounds = tallies[first - 1 : last]
    decided = [t for t in rounds if t.attacker_won is not None]
    return Window(
        first,
        last,
        influence=share(sum(t.attacker_weight for t in rounds), sum(t.weight for t in rounds)),
        candidates=share(sum(t.attacker_candidates for t in rounds), sum(t.candidates for t in rounds)),
        wins=share(sum(bool(t.attacker_won) for t in decided), len(decided)),
        accuracy=sum(t.right for t in rounds) / len(rounds),
    )


def simulate(rounds: int = ROUNDS, seed: int = 0) -> tuple[ScenarioResult, ...]:
    """Every scenario, with and without reputation, over the same questions."""
    if rounds < 1:
        raise ValueError(f"the simulation needs at least one round, got {rounds}")
    return tuple(
        ScenarioResult(s, _run(s, rounds, seed, weighted=True), _run(s, rounds, seed, weighted=False))
        for s in scenarios()
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_simulation(results: Sequence[ScenarioResult], rounds: int, seed: int) -> None:
    print(
        f"Attack simulation, seed {seed}: {rounds} rounds a scenario, {HONEST_PEERS} honest peers, "
        f"{ANSWERERS} answerers a round, 4-option questions, free-answer challenges "
        f"(a lucky guess right {LUCK:.0%} of the time)"
    )
    print(
        "rep: reputation on (eligibility, stakes, votes weighed by score); "
        "flat: everyone answers and judges, every vote weighs 1"
    )
    for result in results:
        print(f"\n{result.scenario.name}: {result.scenario.description}")
        print("attackers' share of vote weight, of candidates and of winning answers; accuracy of the winner")
        print(f"{'rounds':>9} | {'influence':^15} | {'candidates':^15} | {'wins':^15} | {'accuracy':^15}")
        print(f"{'':>9} | " + " | ".join(f"{'rep':>7} {'flat':>7}" for _ in range(4)))
        rows = [
            (f"{w.first}-{w.last}", w, f)
            for w, f in zip(result.weighted.windows, result.flat.windows, strict=True)
        ]
        for label, w, f in [*rows, ("all", result.weighted.overall, result.flat.overall)]:
            cells = [
                (w.influence, f.influence),
                (w.candidates, f.candidates),
                (w.wins, f.wins),
                (w.accuracy, f.accuracy),
            ]
            print(f"{label:>9} | " + " | ".join(f"{_percent(a):>7} {_percent(b):>7}" for a, b in cells))
        end = result.weighted
        summary = []
        for group in (HONEST, result.scenario.attackers):
            if group:
                mean = sum(end.scores[p.name] for p in group) / len(group)
                eligible = sum(p.name in end.eligible for p in group)
                summary.append(f"{group[0].kind} mean score {mean:.1f}, {eligible}/{len(group)} eligible")
        print("end, with reputation: " + "; ".join(summary))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="rounds a scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--testnet-rounds",
        type=int,
        default=ledger_cost.ROUNDS,
        help="real rounds with the ledger on and off each (0: skip the testnet part)",
    )
    parser.add_argument("--entries", type=int, default=ledger_cost.CATCH_UP_ENTRIES, help="to catch up on")
    parser.add_argument(
        "--no-holes", action="store_true", help="skip the hostile-peer attacks run for real (bench.holes)"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print_simulation(simulate(args.rounds, args.seed), args.rounds, args.seed)
    if args.testnet_rounds > 0:
        ledger_cost.print_cost(ledger_cost.measure(args.testnet_rounds, args.entries))
    if not args.no_holes:
        holes.print_rows(list(holes.rows()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
