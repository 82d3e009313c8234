"""Proof of capability: this node asks peers questions whose answers every node can check, domain by domain.

On every beat this node challenges, in each domain of the bank, each peer it
may challenge there (`Standing.challengers`: one of the holders the rules draw
for that peer, or anyone while the domain has fewer than `min_holders`
holders): a peer with no say there yet on every beat, one with a say now and
then (`rate`), so that one which stops answering well loses it. A peer may
also ask to be challenged (`CHALLENGE_PROTOCOL`, `ask_to_be_challenged`): it
is challenged on the next beat. A challenge asks a batch of the domain's
questions, each through the same commit and reveal as any round's question,
with a fresh round id, so the peer cannot tell it from a user's. The questions
come from the ledger's bank (`Ledger.bank`, which the reputation rules name),
and the challenge becomes a ledger entry naming each question by its id beside
the peer's signed answer and its grade: every node grades it again against its
own copy of the bank, and counts it only from a challenger the rules allow.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from core.records import DOMAINS, Domain, GenerationRequest
from routing.calibration import MAX_TOKENS
from routing.datasets import domain_of
from routing.grading import grade

from .ledger import LedgerService
from .peers import PeerTable
from .rounds import Answerer, RoundService
from .transport import PeerUnavailable, RemoteError, RequestTimeout, Transport

log = logging.getLogger("swarm.challenges")

CHALLENGE_PROTOCOL = "/swarm/challenge-me/1.0.0"
# Answers of evidence past which a peer that still fails a domain is asked there only now and then.
EVIDENCE_ENOUGH = 40.0
ASK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class ChallengeConfig:
    interval_s: float = 60.0  # between beats; 0 turns challenging off
    rate: float = 0.1  # chance per beat that a peer with a say in a domain is challenged there all the same
    questions: int = 5  # per challenge, all of one domain; the test counts them across challenges
    max_tokens: dict[str, int] = field(default_factory=lambda: dict(MAX_TOKENS))


class ChallengeService:
    def __init__(
        self,
        rounds: RoundService,
        ledger: LedgerService,
        peers: Callable[[], PeerTable],
        config: ChallengeConfig = ChallengeConfig(),
        *,
        transport: Transport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.rounds = rounds
        self.ledger = ledger
        self.peers = peers
        self.config = config
        self.transport = transport
        self.rng = rng or random.SystemRandom()
        self._busy: set[str] = set()  # peers with a challenge in flight
        self._asked: set[str] = set()  # peers that asked to be challenged, until the next beat
        bank = ledger.ledger.bank.items
        self._by_domain: dict[Domain, list[str]] = {
            d: sorted(k for k, item in bank.items() if domain_of(item) == d) for d in DOMAINS
        }
        if transport is not None:
            transport.handle(CHALLENGE_PROTOCOL, self._serve_ask)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self.config.interval_s <= 0:
            return
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(self.config.interval_s * self.rng.uniform(0.5, 1.5))
                for peer_id, models, domain in self.due(time.time()):
                    self._busy.add(peer_id)
                    nursery.start_soon(self._challenge_and_free, peer_id, models, domain)

    def drawn(self, peer_id: str, domain: Domain, at: float) -> bool:
        """Whether this node is among the peer's challengers in the domain at `at` (`Standing.challengers`,
        drawn among the nodes in the peer table and this one), so that it challenges the peer there."""
        book, rules, me = self.ledger.ledger.book, self.ledger.ledger.rules, self.rounds.peer_id
        candidates = [me, *(e.info.peer_id for e in self.peers().peers())]
        return me in book.challengers(peer_id, domain, candidates, at, rules)

    def due(self, now: float) -> list[tuple[str, Sequence[str], Domain]]:
        """The peers to challenge on this beat where this node is drawn to, each with the models it hosts
        and the domain to ask: one where it has little evidence yet, else now and then (`rate`, and when
        it asked) one where it failed or holds a say, so one that stops answering well loses it."""
        asked, self._asked = self._asked, set()
        due = []
        for entry in self.peers().peers():
            peer_id, models = entry.info.peer_id, [m.name for m in entry.info.models]
            if peer_id in self._busy or not models:
                continue
            domains = [d for d in DOMAINS if self._by_domain[d] and self.drawn(peer_id, d, now)]
            held = [d for d in domains if self.ledger.holds(peer_id, d)]
            # Unproven with little evidence yet: every beat, from one of its challengers on average.
            # Proven, or failing on plenty of evidence: now and then, or when it asks.
            fresh = [d for d in domains if d not in held and self._asked_of(peer_id, d) < EVIDENCE_ENOUGH]
            stale = [d for d in domains if d not in held and d not in fresh]
            share = 1 / self.ledger.ledger.rules.challengers  # this node's part of the peer's challenges
            if fresh and self.rng.random() < share:
                due.append((peer_id, models, self.rng.choice(fresh)))
            elif (held or stale) and (peer_id in asked or self.rng.random() < self.config.rate * share):
                due.append((peer_id, models, self.rng.choice(stale + held)))
        return due

    def _asked_of(self, peer_id: str, domain: Domain) -> float:
        return self.ledger.ledger.book.tally(peer_id, domain, self.ledger.ledger.rules).asked

    async def _challenge_and_free(self, peer_id: str, models: Sequence[str], domain: Domain) -> None:
        try:
            await self.challenge(peer_id, models, domain)
        finally:
            self._busy.discard(peer_id)

    async def challenge(self, peer_id: str, models: Sequence[str], domain: Domain) -> dict[str, Any]:
        """Ask one peer `questions` questions of the domain of one of its models, grade, write the entry."""
        bank = self.ledger.ledger.bank.items
        model = self.rng.choice(list(models))
        pool = self._by_domain[domain]
        keys = self.rng.sample(pool, min(self.config.questions, len(pool)))
        answers: list[dict[str, Any]] = [{} for _ in keys]

        async def ask(i: int, key: str) -> None:
            item = bank[key]
            tokens = self.config.max_tokens[item.kind]
            request = GenerationRequest(
                model=model, messages=item.messages, max_tokens=tokens, temperature=0.0
            )
            revealed, _ = await self.rounds.collect(uuid.uuid4().hex, request, [Answerer(model, peer_id)])
            # The question by its id alone: every node grades the answer against its own copy of the bank.
            answer: dict[str, Any] = {"item": key, "correct": False, "commitment": None, "reveal": None}
            if revealed:
                r = revealed[0]
                answer["correct"] = await trio.to_thread.run_sync(grade, item, r.text)
                answer["commitment"], answer["reveal"] = r.commitment.to_wire(), r.reveal.to_wire()
            answers[i] = answer

        async with trio.open_nursery() as nursery:
            for i, key in enumerate(keys):
                nursery.start_soon(ask, i, key)
        record = {"challenge": uuid.uuid4().hex, "peer": peer_id, "model": model, "answers": answers}
        right = sum(a["correct"] for a in answers)
        log.info("challenged %s (%s) on %s: %d of %d right", peer_id, model, domain, right, len(answers))
        self.ledger.record("challenge", record)
        return record

    # ---- asking to be challenged

    async def _serve_ask(self, sender: str, body: dict[str, Any]) -> Any:
        """A peer asks to be challenged: it is, on the next beat, where this node may challenge it. Only a
        peer in the peer table hosting a model, so a stranger can't make this node hold a list."""
        entry = next((e for e in self.peers().peers() if e.info.peer_id == sender), None)
        if entry is None or not entry.info.models:
            yield {"error": "only a peer this node knows, hosting a model, can ask to be challenged"}
            return
        self._asked.add(sender)
        yield {"queued": True, "interval_s": self.config.interval_s}

    async def ask_to_be_challenged(self) -> dict[str, bool]:
        """Ask every peer to challenge this node on its next beat; per peer, whether it took the request."""
        assert self.transport is not None
        took: dict[str, bool] = {}

        async def ask(peer_id: str) -> None:
            try:
                reply = await self.transport.request(  # type: ignore[union-attr]
                    peer_id, CHALLENGE_PROTOCOL, {"op": "challenge-me"}, timeout=ASK_TIMEOUT_S
                )
                took[peer_id] = bool(reply.get("queued"))
            except (PeerUnavailable, RequestTimeout, RemoteError) as exc:
                log.info("could not ask %s to challenge this node: %s", peer_id, exc)
                took[peer_id] = False

        async with trio.open_nursery() as nursery:
            for entry in self.peers().peers():
                nursery.start_soon(ask, entry.info.peer_id)
        return dict(sorted(took.items()))
