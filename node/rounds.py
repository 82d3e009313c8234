"""Consensus rounds, driven by the gateway: the node that received the question.

1. The router picks the answerers (experts; each one a model on a peer, or here).
2. Commit: each answerer generates its answer and returns only a signed
   commitment, sha256 of (round, model, salt, answer), naming the round's
   answerers and the gateway that asked (every statement of a round names it,
   so no other key can pass the evidence off as its own round in the ledger).
   Nobody sees an answer yet. The commit request names the answerers and
   when the commit phase closes; an answerer commits once per round and model.
3. Reveal: once every commitment is in or the commit deadline has passed, the
   gateway asks each committed answerer for its answer and salt, signed, and
   drops any whose reveal does not match its commitment: an answer copied
   after the fact can't match a commitment made before it. An answerer reveals
   only to the gateway that asked it to commit, and only once the commit phase
   closed: the reveal request carries every named answerer's signed
   commitment, or comes after the deadline. So no co-answerer reads an answer
   before committing its own (README.md, "Security").
4. The answers are shuffled and anonymised (c0, c1, ...). Judges (every peer
   hosting a model, this node included) get the pairs of the schedule,
   never a pair holding their own answer, plus a GOOD/BAD check of each
   answer that isn't theirs; they answer with a signed ballot.
5. The votes, weighted by each judge's reputation, fit a Bradley-Terry model;
   among the answers most judges found GOOD, the one with the most strength
   behind it wins (candidates saying the same thing pool their strength).

Every phase has a deadline; a peer that misses one, or sends something that
does not verify or parse, is left out of the round and recorded. A round
with too few answers or judges degrades, and says so: one answer is
returned as is, and with no usable votes the best routed answer wins.

An observer, if given, is told of each phase of a round as it ends (a
RoundEvent); it must return at once, since the round waits for it.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

import trio

from core.identity import Identity
from core.records import GENERAL, Domain, Generation, GenerationRequest, Message, request_from_wire, to_wire
from core.statements import BadStatement, Statement, commitment_digest, from_wire, sign
from core.wire.provenance import RouteReport
from ranking import aggregate, ballots, judging, priors, schedule
from ranking.bradley_terry import Ranking, Vote
from ranking.majority import majority
from routing.grading import option_count, spoken_answer

from .admission import Admission
from .engines import readings
from .engines.base import EngineError, NoProbabilities
from .hosting import HostedModel, InvalidRequest, QueueFull
from .transport import PeerUnavailable, RemoteError, RequestTimeout, Transport

log = logging.getLogger("swarm.rounds")

ROUND_PROTOCOL = "/swarm/round/1.0.0"
# Each operation of the protocol, and the kind of statement that answers it.
STATEMENT_KINDS = {"commit": "commitment", "reveal": "reveal", "judge": "ballot"}
Mode = Literal["consensus", "vote"]
# What an observer hears, in this order; a round that finds no answer ends "failed" instead of "finished".
Phase = Literal["started", "committed", "revealed", "judged", "finished", "failed"]
# How the reasons for leaving out a peer that sent something wrong (not nothing) begin.
MALFORMED = ("malformed", "BadStatement", "commitment mismatch", "the commitment is", "the reveal is")
K = TypeVar("K")
# Where a request's body holds the peer that sent it: written by this node from the transport, over
# whatever the peer put there.
SENDER = "sender"
# The most answerers a round names (the API's most experts), and so the most candidates a judge is sent.
MAX_ANSWERERS = 16
MAX_TEXT_CHARS = 16_000  # a question or an answer sent to a judge; past any model's context here
# How long after its commit deadline the gateway asks for reveals: the answerer's deadline started when
# the commit request reached it, a moment after the gateway's.
REVEAL_MARGIN_S = 1.0


@dataclass(frozen=True)
class RoundConfig:
    commit_timeout_s: float = 300.0  # generating the answers
    reveal_timeout_s: float = 15.0
    judge_timeout_s: float = 300.0
    judge_max_tokens: int = 8
    # How this node judges: "probability" reads its verdicts from token probabilities where its engine
    # gives them (node.engines.readings), "text" parses what its model writes.
    judge_reading: ballots.Reading = "text"
    # Start each candidate from its model's calibrated accuracy on the question's clusters, as the router
    # predicted it (ranking.priors): with judges at chance the round is then the calibration-weighted vote.
    answerer_priors: bool = False
    full_schedule_up_to: int = 5  # candidates; beyond, the sparse ~3n schedule
    # A winner must be found GOOD by at least this share of its checks.
    good_threshold: float = aggregate.GOOD_THRESHOLD
    pending_ttl_s: float = 900.0  # how long an answerer keeps an unrevealed answer


@dataclass(frozen=True)
class Answerer:
    model: str
    peer_id: str


@dataclass(frozen=True)
class _Pending:
    """An answer committed to and not yet forgotten, and who may have it revealed, when."""

    generation: Generation
    salt: str
    made_at: float  # monotonic
    gateway: str  # the peer that asked for the commitment: the only one the answer is revealed to
    answerers: frozenset[Answerer]  # the round's answerers, as the commit request named them
    closes_at: float  # monotonic: the commit phase's end, measured from the commit request's arrival


@dataclass(frozen=True)
class Candidate:
    """One revealed answer: `cid` is its anonymous id in the round (its index in the shuffled order)."""

    cid: int
    model: str
    peer_id: str
    text: str
    commitment: Statement
    reveal: Statement


@dataclass(frozen=True)
class Revealed:
    """An answer revealed as committed, with both signed statements."""

    answerer: Answerer
    text: str
    commitment: Statement
    reveal: Statement


@dataclass(frozen=True)
class Miss:
    """A peer left out of a phase, and why."""

    peer_id: str
    phase: str
    reason: str

    @property
    def malformed(self) -> bool:
        """Whether the peer sent something wrong, rather than nothing in time."""
        return self.reason.startswith(MALFORMED)


@dataclass
class RoundResult:
    round_id: str
    mode: Mode
    question: str
    candidates: list[Candidate] = field(default_factory=list)
    winner: int | None = None  # a cid
    ranking: Ranking | None = None
    good: dict[int, tuple[int, int]] = field(default_factory=dict)  # cid -> (GOOD, GOOD + BAD)
    votes: list[Vote] = field(default_factory=list)
    ballots: list[Statement] = field(default_factory=list)
    judges: dict[str, float] = field(default_factory=dict)  # judge -> weight, for those who voted
    misses: list[Miss] = field(default_factory=list)
    chosen: dict[str, set[str]] = field(default_factory=dict)  # peer -> the roles it was asked to play
    timings_s: dict[str, float] = field(default_factory=dict)
    degraded: str | None = None
    majority_answer: str | None = None
    answerers: list[Answerer] = field(default_factory=list)  # in routed order, best first
    committed: list[Answerer] = field(default_factory=list)  # those whose commitment came in
    routing: RouteReport | None = None  # how the router chose the answerers, when it did
    error: str | None = None  # why a round found no answer at all
    domain: Domain = GENERAL  # the question's: whose say counts, and whose scores the round moves

    @property
    def answer(self) -> Candidate | None:
        return None if self.winner is None else self.candidates[self.winner]


@dataclass(frozen=True)
class RoundEvent:
    """A phase of a round just ended. `result` is the round as far as it got, and goes on changing after
    the observer returns: what it keeps, it copies."""

    phase: Phase
    result: RoundResult


class RoundError(Exception):
    """A round that produced no answer at all."""


class RoundService:
    """Both sides of the protocol: serving answer/reveal/judge requests, and driving rounds as gateway."""

    def __init__(
        self,
        identity: Identity,
        transport: Transport | None,
        local: dict[str, HostedModel],
        judges: Callable[[], list[str]],
        *,
        weights: Callable[[str, Domain], float] = lambda peer, domain: 1.0,
        may_judge: Callable[[str, Domain], bool] = lambda peer, domain: True,
        recorder: Callable[[RoundResult], None] | None = None,
        observer: Callable[[RoundEvent], None] | None = None,
        config: RoundConfig = RoundConfig(),
        admission: Admission | None = None,
    ) -> None:
        self.identity = identity
        self.transport = transport
        self.local = local
        self.judges = judges  # peers that may judge (this node included when it hosts a model)
        self.weights = weights  # a judge's vote weight in a round of the domain
        self.may_judge = may_judge  # whether a peer has a say to judge in the domain
        self.recorder = recorder  # told of every round played out, to keep it (the ledger)
        self.observer = observer  # told of every phase of every round this node runs, to show it
        self.config = config
        self.admission = admission  # how much work peers may ask of this node; None: no bound
        # (round, model) -> the answer committed to, kept after its reveal so a second commit is refused
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._committing: set[tuple[str, str]] = set()  # being generated: a second commit is refused
        if transport is not None:
            transport.handle(ROUND_PROTOCOL, self._serve)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    # ---- the answerer's and the judge's side

    async def _handle(self, sender: str, body: dict[str, Any]) -> Statement:
        """One operation asked of this node by `sender`, a peer or this node as gateway."""
        op = body.get("op")
        if op not in STATEMENT_KINDS:
            raise InvalidRequest(f"unknown round operation {op!r}")
        body = {**body, SENDER: sender}
        return await {"commit": self.commit, "reveal": self.reveal, "judge": self.judge}[op](body)

    async def _serve(self, sender: str, body: dict[str, Any]) -> Any:
        try:
            with self._admitted(sender, body):
                statement = await self._handle(sender, body)
            yield {"statement": statement.to_wire()}
        except (InvalidRequest, EngineError, QueueFull, KeyError, TypeError, ValueError) as exc:
            yield {"error": f"{type(exc).__name__}: {exc}"}

    def _admitted(self, sender: str, body: dict[str, Any]) -> AbstractContextManager[None]:
        """The admission of a peer's commit or judge request, bounded first; a reveal does no work."""
        if self.admission is None or body.get("op") == "reveal":
            return nullcontext()
        if body.get("op") == "commit":
            tokens = request_from_wire(body["request"]).max_tokens
        else:
            task = self._judge_task(body)
            tokens = (len(task.pairs) + len(task.check)) * self.config.judge_max_tokens
            if self.config.judge_reading == "probability":  # each answer in its pairs, scored by likelihood
                tokens += len({c for pair in task.pairs for c in pair}) * readings.LIKELIHOOD_MAX_CHARS
        return self.admission.admit(sender, tokens)

    async def commit(self, body: dict[str, Any]) -> Statement:
        round_id = str(body["round"])
        request = request_from_wire(body["request"])
        answerers = _named_answerers(body["answerers"])
        if Answerer(request.model, self.peer_id) not in answerers:
            raise InvalidRequest("a commit request names the round's answerers, this one among them")
        closes_in_s = float(body["closes_in_s"])
        if not 0 < closes_in_s <= self.config.pending_ttl_s:
            raise InvalidRequest(f"a commit phase lasts up to {self.config.pending_ttl_s:g} s")
        closes_at = time.monotonic() + closes_in_s
        hosted = self.local.get(request.model)
        if hosted is None:
            raise InvalidRequest(f"model {request.model!r} is not hosted here")
        key = (round_id, request.model)
        self._forget_old()
        if key in self._pending or key in self._committing:
            raise InvalidRequest(
                f"round {round_id} already has a commitment for model {request.model!r} here: "
                "an answerer commits once"
            )
        self._committing.add(key)
        try:
            generation = await hosted.generate(request)
        finally:
            self._committing.discard(key)
        salt = secrets.token_hex(16)
        gateway = str(body[SENDER])
        self._pending[key] = _Pending(generation, salt, time.monotonic(), gateway, answerers, closes_at)
        digest = commitment_digest(round_id, request.model, salt, generation.text)
        named = sorted([a.peer_id, a.model] for a in answerers)
        return sign(
            self.identity,
            "commitment",
            {
                "round": round_id,
                "model": request.model,
                "digest": digest,
                "answerers": named,
                "gateway": gateway,
            },
        )

    async def reveal(self, body: dict[str, Any]) -> Statement:
        round_id, model, sender = str(body["round"]), str(body["model"]), str(body[SENDER])
        pending = self._pending.get((round_id, model))
        if pending is None or pending.gateway != sender:
            # The same words whether the answer exists or not: a stranger learns nothing of it.
            raise InvalidRequest(f"nothing to reveal to {sender} for round {round_id} and model {model!r}")
        if time.monotonic() < pending.closes_at and not _all_committed(
            round_id, pending.answerers, body.get("commitments")
        ):
            raise InvalidRequest(
                f"the commit phase of round {round_id} is open: a reveal comes with every answerer's "
                "signed commitment, or after the deadline"
            )
        generation, salt = pending.generation, pending.salt
        body = {
            "round": round_id,
            "model": model,
            "answer": generation.text,
            "salt": salt,
            "finish_reason": generation.finish_reason,
            "usage": to_wire(generation.usage),
            "gateway": sender,
        }
        return sign(self.identity, "reveal", body)

    async def judge(self, body: dict[str, Any]) -> Statement:
        """Judge with the first model hosted here: each pair (A or B, U when it can't tell) and each answer
        (GOOD or BAD). An unreadable reply becomes None, which the gateway counts as no vote. With
        judge_reading "probability" and an engine that gives them, from its token probabilities instead
        (node.engines.readings), called on the engine directly: a judge task is one admitted request."""
        task, gateway = self._judge_task(body), str(body[SENDER])
        if not self.local:
            raise InvalidRequest("this node hosts no model to judge with")
        model = next(iter(self.local.values()))
        question, answers = task.question, task.answers
        if self.config.judge_reading == "probability":
            try:
                read = await trio.to_thread.run_sync(
                    readings.ballot,
                    model.engine,
                    model.prepare,
                    model.name,
                    question,
                    answers,
                    task.pairs,
                    task.check,
                )
                return sign(self.identity, "ballot", {"round": task.round_id, "gateway": gateway, **read})
            except NoProbabilities:
                pass  # this model only writes: read what it writes
        votes = []
        for first, second in task.pairs:
            reply = await self._ask(model, judging.pairwise_prompt(question, answers[first], answers[second]))
            votes.append([first, second, judging.parse_preference(reply)])
        verdicts = {}
        for cid in task.check:
            reply = await self._ask(model, judging.completeness_prompt(question, answers[cid]))
            verdicts[str(cid)] = judging.parse_verdict(reply)
        ballot = {"round": task.round_id, "gateway": gateway, "votes": votes, "verdicts": verdicts}
        return sign(self.identity, "ballot", ballot)

    def _judge_task(self, body: dict[str, Any]) -> _JudgeTask:
        """The judge request read and held to what a round's schedule can ask: at most MAX_ANSWERERS
        answers, as many pairs as the schedule has for that many, each answer checked once; InvalidRequest
        (counted as refused for its size) otherwise, before any work."""
        try:
            return _JudgeTask.read(body, self.config.full_schedule_up_to)
        except InvalidRequest:
            if self.admission is not None:
                self.admission.refused["size"] += 1
            raise

    async def _ask(self, model: HostedModel, messages: tuple[Message, ...]) -> str:
        request = GenerationRequest(
            model=model.name, messages=messages, max_tokens=self.config.judge_max_tokens, temperature=0.0
        )
        return (await model.generate(request)).text

    def _forget_old(self) -> None:
        cutoff = time.monotonic() - self.config.pending_ttl_s
        for key in [k for k, pending in self._pending.items() if pending.made_at < cutoff]:
            del self._pending[key]

    # ---- the gateway's side

    async def _call(self, peer_id: str, body: dict[str, Any], timeout: float) -> Statement:
        """One operation on a peer, or on this node directly; returns the statement, verified, and naming
        this node as the gateway that asked (the ledger refuses an entry holding one that names another)."""
        if peer_id == self.peer_id:
            with trio.fail_after(timeout):
                statement = await self._handle(self.peer_id, body)
        else:
            assert self.transport is not None
            reply = await self.transport.request(peer_id, ROUND_PROTOCOL, body, timeout=timeout)
            if "error" in reply:
                raise RemoteError(str(reply["error"]))
            statement = from_wire(reply.get("statement"), kind=STATEMENT_KINDS[body["op"]], signer=peer_id)
        if statement.body.get("gateway") != self.peer_id:
            raise BadStatement(f"a {statement.kind} of {peer_id} names another gateway than this one")
        return statement

    async def _gather(
        self, calls: Mapping[K, tuple[str, dict[str, Any]]], timeout: float
    ) -> tuple[dict[K, Statement], dict[K, str]]:
        """Send every (peer, body) at once and wait until the deadline: what came back, and why the rest
        did not. One peer's failure or silence never holds up the others beyond the deadline."""
        done: dict[K, Statement] = {}
        failed: dict[K, str] = {}

        async def one(key: K, peer_id: str, body: dict[str, Any]) -> None:
            try:
                done[key] = await self._call(peer_id, body, timeout)
            except (
                PeerUnavailable,
                RemoteError,
                RequestTimeout,
                BadStatement,
                EngineError,
                QueueFull,
            ) as exc:
                failed[key] = f"{type(exc).__name__}: {exc}"
            except (InvalidRequest, KeyError, TypeError, ValueError) as exc:
                failed[key] = f"malformed: {exc}"
            except trio.TooSlowError:
                failed[key] = "missed the deadline"

        with trio.move_on_after(timeout):
            async with trio.open_nursery() as nursery:
                for key, (peer_id, body) in calls.items():
                    nursery.start_soon(one, key, peer_id, body)
        for key in calls:
            if key not in done and key not in failed:
                failed[key] = "missed the deadline"
        return done, failed

    async def collect(
        self,
        round_id: str,
        request: GenerationRequest,
        answerers: list[Answerer],
        timings: dict[str, float] | None = None,
    ) -> tuple[list[Revealed], list[Miss]]:
        """Commit, then reveal: every answer that came back matching its commitment, in the answerers'
        order, and the peers left out (with each phase's seconds in `timings`). A challenge asks through
        this too, so it looks like any round to the peer that answers."""
        timings = {} if timings is None else timings
        commits, misses = await self._commitments(round_id, request, answerers, timings)
        revealed, failed = await self._reveals(round_id, answerers, commits, timings)
        return revealed, misses + failed

    async def _commitments(
        self, round_id: str, request: GenerationRequest, answerers: list[Answerer], timings: dict[str, float]
    ) -> tuple[dict[Answerer, Statement], list[Miss]]:
        """Each answerer's signed commitment, in the answerers' order, and those left out. Returns once the
        answerers will reveal: when every one committed, or the commit phase closed."""
        started = time.monotonic()
        named = [[a.peer_id, a.model] for a in answerers]
        closes_in_s = self.config.commit_timeout_s
        commits, failed = await self._gather(
            {
                a: (
                    a.peer_id,
                    {
                        "op": "commit",
                        "round": round_id,
                        "request": to_wire(replace(request, model=a.model)),
                        "answerers": named,
                        "closes_in_s": closes_in_s,
                    },
                )
                for a in answerers
            },
            closes_in_s,
        )
        timings["generation"] = time.monotonic() - started
        if commits and failed:  # no proof of the rest's failure to show: the answerers wait out the phase
            await trio.sleep(max(0.0, started + closes_in_s + REVEAL_MARGIN_S - time.monotonic()))
        in_order = {a: commits[a] for a in answerers if a in commits}
        return in_order, [Miss(a.peer_id, "commit", why) for a, why in failed.items()]

    async def _reveals(
        self,
        round_id: str,
        answerers: list[Answerer],
        commits: dict[Answerer, Statement],
        timings: dict[str, float],
    ) -> tuple[list[Revealed], list[Miss]]:
        """The committed answers, revealed and checked against their commitments, and those left out."""
        started = time.monotonic()
        shown = [c.to_wire() for c in commits.values()] if len(commits) == len(answerers) else []
        reveals, failed = await self._gather(
            {
                a: (a.peer_id, {"op": "reveal", "round": round_id, "model": a.model, "commitments": shown})
                for a in commits
            },
            self.config.reveal_timeout_s,
        )
        misses = [Miss(a.peer_id, "reveal", why) for a, why in failed.items()]
        revealed = []
        for a, commitment in commits.items():
            if a not in reveals:
                continue
            try:
                text = _checked_reveal(round_id, a, commitment, reveals[a])
            except ValueError as mismatch:
                misses.append(Miss(a.peer_id, "reveal", str(mismatch)))
                continue
            revealed.append(Revealed(a, text, commitment, reveals[a]))
        timings["commit_reveal"] = time.monotonic() - started
        return revealed, misses

    async def run(
        self,
        request: GenerationRequest,
        question: str,
        answerers: list[Answerer],
        mode: Mode,
        *,
        routing: RouteReport | None = None,
        domain: Domain = GENERAL,
    ) -> RoundResult:
        """One round over `answerers` (in routed order, best first; `routing` says how they were chosen);
        the recorder is told of it, whether it found an answer or not."""
        result = RoundResult(
            uuid.uuid4().hex, mode, question, answerers=list(answerers), routing=routing, domain=domain
        )
        self._observe("started", result)
        try:
            await self._play(result, request, answerers)
        except RoundError as exc:
            result.error = str(exc)
            self._record(result)
            self._observe("failed", result)
            raise
        self._record(result)
        self._observe("finished", result)
        return result

    def _record(self, result: RoundResult) -> None:
        if self.recorder is not None and result.chosen:
            self.recorder(result)

    def _observe(self, phase: Phase, result: RoundResult) -> None:
        if self.observer is None:
            return
        try:
            self.observer(RoundEvent(phase, result))
        except Exception:  # whoever watches a round must not be able to break it
            log.exception("the round observer failed on %s of round %s", phase, result.round_id)

    async def _play(self, result: RoundResult, request: GenerationRequest, answerers: list[Answerer]) -> None:
        rid, question, mode = result.round_id, result.question, result.mode
        for a in answerers:
            result.chosen.setdefault(a.peer_id, set()).add("answer")
        commits, result.misses = await self._commitments(rid, request, answerers, result.timings_s)
        result.committed = list(commits)
        self._observe("committed", result)
        revealed, failed = await self._reveals(rid, answerers, commits, result.timings_s)
        result.misses += failed

        order = list(range(len(revealed)))
        random.Random(rid).shuffle(order)  # anonymised: a candidate's id says nothing of who wrote it
        result.candidates = [
            Candidate(
                cid,
                revealed[i].answerer.model,
                revealed[i].answerer.peer_id,
                revealed[i].text,
                revealed[i].commitment,
                revealed[i].reveal,
            )
            for cid, i in enumerate(order)
        ]
        self._observe("revealed", result)
        if not result.candidates:
            raise RoundError(
                "no expert answered: "
                + "; ".join(f"{m.peer_id} ({m.phase}): {m.reason}" for m in result.misses)
            )
        routed = sorted(result.candidates, key=lambda c: answerers.index(Answerer(c.model, c.peer_id)))
        routed_best = routed[0].cid

        if mode == "vote":
            phase = time.monotonic()
            # In routed order, so that a tie goes to the answer of the expert routed first.
            chosen = majority([spoken_answer(question, c.text) for c in routed])
            result.majority_answer = chosen.answer if chosen else None
            result.winner = routed[chosen.supporters[0]].cid if chosen else routed_best
            if chosen is None:
                result.degraded = "no answer could be read for the vote: the best routed answer"
            result.timings_s["aggregation"] = time.monotonic() - phase
            return
        if len(result.candidates) == 1:
            result.winner, result.degraded = 0, "only one answer: returned without judging"
            return

        phase = time.monotonic()
        await self._judge_round(result)
        result.timings_s["judging"] = time.monotonic() - phase
        self._observe("judged", result)

        phase = time.monotonic()
        self._aggregate(result, routed)
        result.timings_s["aggregation"] = time.monotonic() - phase

    async def _judge_round(self, result: RoundResult) -> None:
        n = len(result.candidates)
        authors = [c.peer_id for c in result.candidates]
        comparisons = schedule.schedule(n, result.round_id, full=n <= self.config.full_schedule_up_to)
        judges = sorted({j for j in self.judges() if self.may_judge(j, result.domain)})
        assignment = schedule.assign(comparisons, judges, authors, result.round_id)
        if assignment.unassigned:
            log.info(
                "round %s: %d comparisons had no eligible judge", result.round_id, len(assignment.unassigned)
            )
        answers = {str(c.cid): c.text for c in result.candidates}
        tasks = {}
        for judge in judges:
            pairs = [[c.first, c.second] for c in assignment.tasks.get(judge, ())]
            check = [c.cid for c in result.candidates if c.peer_id != judge]
            if pairs or check:
                tasks[judge] = {
                    "op": "judge",
                    "round": result.round_id,
                    "question": result.question,
                    "answers": answers,
                    "pairs": pairs,
                    "check": check,
                }
        for judge in tasks:
            result.chosen.setdefault(judge, set()).add("judge")
        ballots, failed = await self._gather(
            {j: (j, task) for j, task in tasks.items()}, self.config.judge_timeout_s
        )
        result.misses += [Miss(j, "judge", why) for j, why in failed.items()]
        for judge, ballot in ballots.items():
            task = tasks[judge]
            try:
                votes, verdicts = _read_ballot(ballot, task, result.round_id)
            except ValueError as exc:
                result.misses.append(Miss(judge, "judge", f"malformed ballot: {exc}"))
                continue
            result.ballots.append(ballot)
            result.votes += votes
            for cid, verdict in verdicts.items():
                good, total = result.good.get(cid, (0, 0))
                result.good[cid] = (good + (verdict == "GOOD"), total + 1)
            if votes or verdicts:
                result.judges[judge] = self.weights(judge, result.domain)

    def _aggregate(self, result: RoundResult, routed: list[Candidate]) -> None:
        """The winner by `ranking.aggregate.decide`; with no votes, the best routed answer."""
        if not result.votes:
            result.winner, result.degraded = routed[0].cid, "no judge voted: the best routed answer"
            return
        said = [spoken_answer(result.question, c.text) or f"#{c.cid}" for c in result.candidates]
        decision = aggregate.decide(
            said,
            result.votes,
            result.judges,
            result.good,
            [c.cid for c in routed],
            good_threshold=self.config.good_threshold,
            priors=_answerer_priors(result) if self.config.answerer_priors else None,
        )
        result.winner, result.ranking = decision.winner, decision.ranking


def _answerer_priors(result: RoundResult) -> list[float] | None:
    """Each candidate's log-odds weight from its expert's calibrated quality in the routing report; None
    unless every candidate's expert was calibrated (a guessed quality is no prior)."""
    experts = result.routing.experts if result.routing else []
    quality = {(e.model, e.peer_id): e.quality for e in experts if e.calibrated}
    if any((c.model, c.peer_id) not in quality for c in result.candidates):
        return None
    options = option_count(result.question) or None
    return [priors.log_odds(quality[c.model, c.peer_id], options) for c in result.candidates]


def _checked_reveal(round_id: str, answerer: Answerer, commitment: Statement, reveal: Statement) -> str:
    """The revealed answer, if it is the one committed to; ValueError saying why not otherwise."""
    c, r = commitment.body, reveal.body
    if c.get("round") != round_id or c.get("model") != answerer.model:
        raise ValueError("the commitment is for another round or model")
    if r.get("round") != round_id or r.get("model") != answerer.model:
        raise ValueError("the reveal is for another round or model")
    answer, salt = r.get("answer"), r.get("salt")
    if not isinstance(answer, str) or not isinstance(salt, str):
        raise ValueError("the reveal is malformed")
    if commitment_digest(round_id, answerer.model, salt, answer) != c.get("digest"):
        raise ValueError("commitment mismatch: the revealed answer is not the one committed to")
    return answer


def _read_ballot(ballot: Statement, task: dict[str, Any], round_id: str) -> tuple[list[Vote], dict[int, str]]:
    """The votes and verdicts of a ballot, checked against what the judge was asked; ValueError if off."""
    body = ballot.body
    if body.get("round") != round_id:
        raise ValueError("a ballot for another round")
    asked = [tuple(p) for p in task["pairs"]]
    raw_votes = body.get("votes")
    if not isinstance(raw_votes, list) or len(raw_votes) != len(asked):
        raise ValueError(f"{len(asked)} pairs were asked")
    votes = []
    for entry, pair in zip(raw_votes, asked, strict=True):
        if not isinstance(entry, list) or len(entry) != 3 or (entry[0], entry[1]) != pair:
            raise ValueError(f"a vote on a pair that was not asked: {entry!r}")
        if entry[2] is None:
            continue  # the judge's model gave no readable answer: no vote
        if entry[2] not in ("A", "B", "U"):
            raise ValueError(f"a vote must be A, B or U, got {entry[2]!r}")
        votes.append(Vote.from_preference(ballot.signer, pair[0], pair[1], entry[2]))
    verdicts: dict[int, str] = {}
    raw_verdicts = body.get("verdicts")
    if not isinstance(raw_verdicts, dict) or {int(k) for k in raw_verdicts} - set(task["check"]):
        raise ValueError("verdicts on answers that were not asked")
    for cid, verdict in raw_verdicts.items():
        if verdict is None:
            continue
        if verdict not in ("GOOD", "BAD"):
            raise ValueError(f"a verdict must be GOOD or BAD, got {verdict!r}")
        verdicts[int(cid)] = verdict
    read = ballots.read(body, [e[2] for e in raw_votes], {int(k): v for k, v in raw_verdicts.items()}, asked)
    if read.shares is not None:  # the letters are these probabilities' roundings: the fit takes them whole
        votes = [Vote.soft(ballot.signer, a, b, p) for (a, b), p in zip(asked, read.shares, strict=True)]
        votes += ballots.likelihood_votes(ballot.signer, asked, read.likelihoods)
    return votes, verdicts


def _named_answerers(raw: Any) -> frozenset[Answerer]:
    """The answerers a commit request names, as [peer, model] pairs; InvalidRequest if off."""
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_ANSWERERS:
        raise InvalidRequest(f"a round names 1 to {MAX_ANSWERERS} answerers")
    if not all(isinstance(a, list) and len(a) == 2 and all(isinstance(x, str) for x in a) for a in raw):
        raise InvalidRequest("answerers are [peer, model] pairs")
    return frozenset(Answerer(model, peer) for peer, model in raw)


def _all_committed(round_id: str, answerers: frozenset[Answerer], raw: Any) -> bool:
    """Whether `raw` holds a commitment to this round signed by each of the answerers."""
    if not isinstance(raw, list) or len(raw) > MAX_ANSWERERS:
        return False
    committed = set()
    for wire in raw:
        try:
            commitment = from_wire(wire, kind="commitment")
        except BadStatement:
            return False
        if commitment.body.get("round") == round_id:
            committed.add(Answerer(str(commitment.body.get("model")), commitment.signer))
    return answerers <= committed


@dataclass(frozen=True)
class _JudgeTask:
    """What a judge request asks, held to what a round's schedule can ask."""

    round_id: str
    question: str
    answers: dict[int, str]
    pairs: list[tuple[int, int]]
    check: list[int]

    @classmethod
    def read(cls, body: dict[str, Any], full_schedule_up_to: int) -> _JudgeTask:
        raw_answers, raw_pairs, raw_check = body["answers"], body["pairs"], body["check"]
        if (
            not isinstance(raw_answers, dict)
            or not isinstance(raw_pairs, list)
            or not isinstance(raw_check, list)
        ):
            raise InvalidRequest("a judge request's answers are a map, its pairs and checks lists")
        n = len(raw_answers)
        if n > MAX_ANSWERERS:
            raise InvalidRequest(f"a round has at most {MAX_ANSWERERS} answers, this judge request {n}")
        most = len(schedule.schedule(n, "", full=n <= full_schedule_up_to))
        if len(raw_pairs) > most:
            raise InvalidRequest(
                f"a round of {n} answers has at most {most} pairs to judge, not {len(raw_pairs)}"
            )
        answers = {int(k): str(v) for k, v in raw_answers.items()}
        question = str(body["question"])
        if max(map(len, [question, *answers.values()])) > MAX_TEXT_CHARS:
            raise InvalidRequest(f"a question or answer to judge is {MAX_TEXT_CHARS} characters at most")
        pairs = [(int(a), int(b)) for a, b in raw_pairs]
        check = [int(cid) for cid in raw_check]
        if len(set(pairs)) != len(pairs) or len(set(check)) != len(check):
            raise InvalidRequest("a judge request asks each pair and each check once")
        if any(a == b or a not in answers or b not in answers for a, b in pairs) or set(check) - set(answers):
            raise InvalidRequest("a judge request's pairs and checks are of its own answers")
        return cls(str(body["round"]), question, answers, pairs, check)
