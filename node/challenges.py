"""Proof of capability: this node asks peers questions whose answers every node can check.

A peer with no say is challenged on every beat until it has earned one; a peer
with a say now and then (`rate`), so that one which stops answering well
loses it. A challenge question goes through the same commit and reveal as any
round's question, with a fresh round id, so the peer cannot tell it from a
user's. The questions come from the ledger's bank (`Ledger.bank`, which the
reputation rules name), and the challenge becomes a ledger entry naming each
question by its id beside the peer's signed answer and its grade: every node
grades it again against its own copy of the bank, and it counts only if this
node has a say itself.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import trio

from core.records import GenerationRequest
from routing.calibration import MAX_TOKENS
from routing.grading import grade

from .ledger import LedgerService
from .peers import PeerTable
from .rounds import Answerer, RoundService

log = logging.getLogger("swarm.challenges")


@dataclass(frozen=True)
class ChallengeConfig:
    interval_s: float = 60.0  # between beats; 0 turns challenging off
    rate: float = 0.1  # chance per beat that a peer with a say is challenged all the same
    questions: int = 2  # per challenge
    max_tokens: dict[str, int] = field(default_factory=lambda: dict(MAX_TOKENS))


class ChallengeService:
    def __init__(
        self,
        rounds: RoundService,
        ledger: LedgerService,
        peers: Callable[[], PeerTable],
        config: ChallengeConfig = ChallengeConfig(),
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.rounds = rounds
        self.ledger = ledger
        self.peers = peers
        self.config = config
        self.rng = rng or random.SystemRandom()
        self._busy: set[str] = set()  # peers with a challenge in flight

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        if self.config.interval_s <= 0:
            return
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(self.config.interval_s * self.rng.uniform(0.5, 1.5))
                for peer_id, models in self.due():
                    self._busy.add(peer_id)
                    nursery.start_soon(self._challenge_and_free, peer_id, models)

    def due(self) -> list[tuple[str, Sequence[str]]]:
        """The peers to challenge on this beat, each with the models it hosts."""
        me = self.rounds.peer_id
        if not self.ledger.speaks(me):
            return []  # a challenge from a node with no say would not count
        due = []
        for entry in self.peers().peers():
            peer_id, models = entry.info.peer_id, [m.name for m in entry.info.models]
            if peer_id == me or peer_id in self._busy or not models:
                continue
            # Not proven yet: on every beat; proven: now and then, so that failing later costs it.
            if not self.ledger.proven(peer_id) or self.rng.random() < self.config.rate:
                due.append((peer_id, models))
        return due

    async def _challenge_and_free(self, peer_id: str, models: Sequence[str]) -> None:
        try:
            await self.challenge(peer_id, models)
        finally:
            self._busy.discard(peer_id)

    async def challenge(self, peer_id: str, models: Sequence[str]) -> dict[str, Any]:
        """Ask one peer `questions` questions of one of its models, grade, and write the entry."""
        bank = self.ledger.ledger.bank.items
        model = self.rng.choice(list(models))
        keys = self.rng.sample(sorted(bank), min(self.config.questions, len(bank)))
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
        log.info("challenged %s (%s): %d of %d right", peer_id, model, right, len(answers))
        self.ledger.record("challenge", record)
        return record
