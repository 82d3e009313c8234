"""Writers with a say who lie, on a real 3-node testnet: a gateway forging faults against an honest peer,
and a challenger writing its own questions to pass its friends.

The attacker runs in this process. It earns its say the way any peer does, by passing the nodes'
challenges, and it passes them without a model at all: the challenge questions come from a bank every
node holds (here the testnet's tests/support/challenges.jsonl), so it looks the answers up. Then it signs
entries of its own and gossips them, serving its chain to whoever pulls it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from consensus import Ledger, from_wire
from consensus.entry import GENESIS, KIND
from core.envelope import canonical
from core.identity import Identity
from core.records import ModelInfo, PeerInfo, to_wire
from core.statements import Statement, commitment_digest, sign
from node.ledger import LEDGER_PROTOCOL, LEDGER_TOPIC, round_record
from node.network import ANNOUNCE_TOPIC
from node.ports import free_port
from node.rounds import SENDER, Miss, RoundResult, RoundService
from node.transport import Transport
from reputation import ReputationBook, Rules
from routing.datasets import challenge_bank
from testnet.testnet import Testnet
from tests.integration.test_ledger import EASY, GEMMA, QWEN, SMOLLM, ledger, reputations, same_everywhere

FORGED_ROUNDS = 60
BANK = challenge_bank(EASY)
RULES = Rules(challenge_bank=BANK.digest)  # the testnet's: its nodes ask the questions of EASY


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Testnet:
    directory = tmp_path_factory.mktemp("writers")
    with Testnet(3, [SMOLLM, GEMMA, QWEN], directory, challenge_interval=2, challenge_file=EASY) as testnet:
        yield testnet


class KnowsTheBank(RoundService):
    """A model-less peer that answers every challenge question right, from the bank every node holds."""

    def __init__(self, identity: Identity, transport: Transport) -> None:
        super().__init__(identity, transport, {}, lambda: [])
        self.bank = {item.question: item.answers[0] for item in BANK.items.values()}
        self.committed: dict[tuple[str, str], tuple[str, str]] = {}  # (round, model) -> answer, salt

    async def commit(self, body: dict[str, Any]) -> Statement:
        prompt, model = body["request"]["messages"][0]["content"], body["request"]["model"]
        answer = next((a for q, a in self.bank.items() if prompt.startswith(q)), "I don't know.")
        salt = secrets.token_hex(8)
        self.committed[(body["round"], model)] = (answer, salt)
        digest = commitment_digest(body["round"], model, salt, answer)
        committed = {"round": body["round"], "model": model, "digest": digest, "gateway": body[SENDER]}
        return sign(self.identity, "commitment", committed)

    async def reveal(self, body: dict[str, Any]) -> Statement:
        answer, salt = self.committed.pop((body["round"], body["model"]))
        reveal = {"round": body["round"], "model": body["model"], "answer": answer, "salt": salt}
        return sign(self.identity, "reveal", {**reveal, "gateway": body[SENDER]})


class Attacker:
    """A peer with a key and a say, writing whatever entries it likes on its own chain."""

    def __init__(self, identity: Identity, transport: Transport) -> None:
        self.identity = identity
        self.transport = transport
        self.chain: list[dict[str, Any]] = []  # its entries as sent, the ones it stands by
        transport.handle(LEDGER_PROTOCOL, self._serve_pull)

    @property
    def peer_id(self) -> str:
        return self.identity.peer_id

    def sign(self, type: str, record: dict[str, Any]) -> dict[str, Any]:
        """Its next entry, signed as is: no check of ours stands between a liar's key and its entries."""
        prev = hashlib.sha256(canonical(self.chain[-1])).hexdigest() if self.chain else GENESIS
        body = {"seq": len(self.chain), "prev": prev, "at": time.time(), "rules": RULES.digest()}
        return sign(self.identity, KIND, {**body, "type": type, "record": record}).to_wire()

    async def write(self, type: str, record: dict[str, Any]) -> None:
        wire = self.sign(type, record)
        self.chain.append(wire)
        await self.transport.publish(LEDGER_TOPIC, wire)

    async def _serve_pull(self, sender: str, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        have = int(body.get("have", {}).get(self.peer_id, 0))
        yield {"entries": self.chain[have:]}
        yield {"more": False}


@asynccontextmanager
async def attacker_with_a_say(net: Testnet, tmp_path: Path) -> AsyncIterator[Attacker]:
    """An attacker connected to every node once they all have a say, announcing a model, until every node
    gives it one too. (Joining sooner, it could end the bootstrap with the only say, and challenges
    nobody.)"""
    await has_a_say(net, [n.peer_id for n in net.nodes])
    identity = Identity.load_or_create(tmp_path / "attacker")
    transport = Transport(identity, port=free_port())
    KnowsTheBank(identity, transport)
    attacker = Attacker(identity, transport)
    model = ModelInfo("knows-the-bank", "fake", "none", 1024, True, "cpu")
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run)
        for node in net.nodes:
            await transport.connect(node.multiaddr)

        async def announce() -> None:
            while True:
                info = PeerInfo(identity.peer_id, tuple(transport.listen_addrs), (model,), {}, "test")
                await transport.publish(ANNOUNCE_TOPIC, to_wire(info))
                await trio.sleep(1)

        nursery.start_soon(announce)
        await has_a_say(net, [identity.peer_id])
        yield attacker
        nursery.cancel_scope.cancel()


async def has_a_say(net: Testnet, peers: list[str]) -> None:
    """Wait until every node gives each of `peers` a say."""
    deadline = trio.current_time() + 240
    while not all(all(table.get(p, (0, False))[1] for p in peers) for table in tables(net)):
        assert trio.current_time() < deadline, f"not all of {peers} have a say: {tables(net)}"
        await trio.sleep(1)


def tables(net: Testnet) -> list[dict[str, tuple[float, bool]]]:
    return [reputations(ledger(n.url)) for n in net.nodes]


async def held_everywhere(net: Testnet, gateway: str, entries: int) -> None:
    with trio.fail_after(120):
        while not all(ledger(n.url)["chains"].get(gateway, 0) >= entries for n in net.nodes):
            await trio.sleep(1)


def book_until(wires: Iterable[dict[str, Any]], until: float) -> ReputationBook:
    """The book of the entries dated up to `until`, replayed here."""
    replay = Ledger(rules=RULES, bank=BANK, max_skew_s=float("inf"))
    replay.add_many(e for e in map(from_wire, wires) if e.at <= until)
    return replay.book


async def test_a_gateway_forging_faults_cannot_drain_an_honest_peer(net: Testnet, tmp_path: Path) -> None:
    victim = net.nodes[1].peer_id
    async with attacker_with_a_say(net, tmp_path) as attacker:
        for _ in range(FORGED_ROUNDS):
            # Rounds that never happened: the victim chosen to answer and judge, and charged with every
            # fault a gateway can report, none of which it can disprove.
            forged = RoundResult(uuid.uuid4().hex, "consensus", "a round that never happened")
            forged.chosen = {victim: {"answer", "judge"}}
            forged.misses = [Miss(victim, "reveal", "malformed: a forged reveal")] * 3
            forged.misses += [Miss(victim, "commit", "missed the deadline")] * 2
            await attacker.write("round", round_record(forged))
        await held_everywhere(net, attacker.peer_id, FORGED_ROUNDS)
    views = same_everywhere(net)
    stored = httpx.get(f"{net.nodes[0].url}/v1/ledger/entries?limit=5000", timeout=60).json()["entries"]
    wires = [w for w in stored if "signer" in w]  # entries, not the forks and final checkpoints after them
    end = max(w["body"]["at"] for w in wires if w["signer"] == attacker.peer_id)
    attacked = book_until(wires, end)
    spared = book_until((w for w in wires if w["signer"] != attacker.peer_id), end)
    lost = 1 - attacked.score(victim) / spared.score(victim)
    assert attacked.eligible(victim, "answer", RULES), f"the victim lost its say: {lost:.1%} of its score"
    # Slack for the allowance coming back, and decay, over the seconds the entries span.
    assert lost <= RULES.writer_loss_share + 1e-4, f"{FORGED_ROUNDS} forged rounds took {lost:.1%}"
    assert all(reputations(v)[victim][1] for v in views)


def challenge_answers(
    friend: Identity, items: list[tuple[str, str]], answer: str, attacker: Identity
) -> list[dict[str, Any]]:
    """The friend's signed answers to the attacker's questions, given to it and written up as right."""
    answers = []
    for item, question in items:
        rid = uuid.uuid4().hex
        digest = commitment_digest(rid, "m", "salt", answer)
        asked = {"round": rid, "model": "m", "gateway": attacker.peer_id}
        commitment = sign(friend, "commitment", {**asked, "digest": digest})
        reveal = sign(friend, "reveal", {**asked, "answer": answer, "salt": "salt"})
        answers.append(
            {
                "item": item,
                "kind": "qa",
                "question": question,
                "accepted": [answer],
                "chance": 0.0,
                "correct": True,
                "commitment": commitment.to_wire(),
                "reveal": reveal.to_wire(),
            }
        )
    return answers


async def test_a_challenger_cannot_pass_friends_on_questions_of_its_own(net: Testnet, tmp_path: Path) -> None:
    own, renamed = Identity.generate(), Identity.generate()
    attacks = [
        # Its own questions under ids of its own: "say X", and X is right.
        (own, [("friend/say-x", "Say X."), ("friend/say-x-again", "Say X again.")]),
        # The same questions, under the ids of real bank questions.
        (renamed, [("challenges/france", "Say X."), ("challenges/sum", "Say X again.")]),
    ]
    rejected = [ledger(n.url)["rejected"] for n in net.nodes]
    async with attacker_with_a_say(net, tmp_path) as attacker:
        # Two versions of its first entry: whichever a node takes, if any, the other is a fork there.
        versions = [
            attacker.sign(
                "challenge",
                {
                    "challenge": uuid.uuid4().hex,
                    "peer": friend.peer_id,
                    "model": "m",
                    "answers": challenge_answers(friend, items, "X", attacker.identity),
                },
            )
            for friend, items in attacks
        ]
        with trio.fail_after(60):
            while not all(
                ledger(n.url)["rejected"] >= before + 2 or ledger(n.url)["chains"].get(attacker.peer_id)
                for n, before in zip(net.nodes, rejected, strict=True)
            ):
                for wire in versions:  # again and again: gossip may drop a message without a word
                    await attacker.transport.publish(LEDGER_TOPIC, wire)
                await trio.sleep(1)
    for node in net.nodes:
        table = reputations(ledger(node.url))
        for friend, _ in attacks:
            assert table.get(friend.peer_id, (0.0, False)) == (0.0, False), (
                "a friend passed on made-up questions"
            )
