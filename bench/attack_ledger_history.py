"""Attacks on the ledger's history, run against a real 3-node testnet: what a peer with a key gains by
forking its chain, and by backdating entries.

    python -m bench.attack_ledger_history

The nodes challenge each other every 2 s with easy questions (tests/support/challenges.jsonl) and earn
their say within a minute or two; the network then runs long enough to write its past down (an epoch
of checkpoints, its signing delay and the gossip: SETTLE_S at most). Then two attackers, each a
libp2p peer in this process:

- fork: an identity that earns a say by answering its challenges right (it holds the file they come
  from), then signs two different entries with the same sequence number, and hands one to node 1 and
  the other to node 2 when they pull its chain. Measured: its say on each node once the nodes have
  gossiped, which nodes hold both entries (the proof), and whether the nodes end on one head.
- backdate: a fresh identity posts a challenge of a friend dated at=1, before anything the network
  wrote, graded right on the friend's own signed answers, and the friend one of it dated at=2: in a
  network's first moments anyone's challenge counts. Measured: the pair's say on each node, how many
  honest nodes keep theirs, and whether the nodes agree on the table.

`rows()` runs both, the fork first (the backdating, where it works, takes the honest nodes' say, and
their challenges with it), and says what each attacker gained; `gained_before` is the same code run
against the commit before the fixes, `PYTHONPATH` pointing at a worktree of it.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import trio

from bench.harness import started
from bench.holes import measured, print_rows
from consensus import GENESIS, BadEntry, LedgerEntry, from_wire, make
from core.identity import Identity
from core.records import ModelInfo, PeerInfo, request_from_wire, to_wire
from core.statements import Statement, commitment_digest, sign
from node.ledger import LEDGER_PROTOCOL, LEDGER_TOPIC
from node.network import ANNOUNCE_TOPIC
from node.ports import free_port
from node.rounds import SENDER, RoundService
from node.transport import Transport
from routing.datasets import Item, load_file
from testnet.testnet import Testnet

EASY = Path(__file__).parents[1] / "tests" / "support" / "challenges.jsonl"
MODELS = ["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"]
CHALLENGE_INTERVAL_S = 2.0
ESTABLISH_S = 300.0  # every node earning its say on 2 cores shared with other work
SETTLE_S = 150.0  # the next epoch boundary, the signing delay and the gossip, with room to spare
DELIVER_S = 120.0
AGREE_S = 90.0  # gossip and catch-up after the attack, before the nodes are compared
ATTACKS = {
    "fork": (
        "forks are not settled",
        "a signer with a say signs two entries for one seq: node 1 pulls one, node 2 the other",
    ),
    "backdate": (
        "history rewritten by backdating",
        "a fresh key's challenge of a friend dated at=1, and the friend's of it at=2, gossiped",
    ),
}
BEFORE = "b0ea0a6"
GAINED_BEFORE = {
    "fork": (
        "kept its say on 3 of 3 nodes (score 4.0, eligible); 0 of 3 nodes held both entries; 2 head(s); "
        "its entry dated into its own past taken by 0 node(s)"
    ),
    "backdate": (
        "the pair had a say on 3 of 3 nodes (scores 10.0); honest nodes with a say, per node: [0, 0, 0]; "
        "1 table(s)"
    ),
}

T = TypeVar("T")


def network(directory: Path) -> Testnet:
    return Testnet(3, MODELS, directory, challenge_interval=CHALLENGE_INTERVAL_S, challenge_file=EASY)


# ---- reading the nodes


async def view(client: httpx.AsyncClient, url: str) -> dict[str, Any]:
    return (await client.get(f"{url}/v1/ledger?limit=0")).json()


async def stored(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    """Everything the node holds on disk, every page."""
    items: list[dict[str, Any]] = []
    while True:
        page = (await client.get(f"{url}/v1/ledger/entries?offset={len(items)}&limit=5000")).json()
        items += page["entries"]
        if not page["more"]:
            return items


def entries_in(items: Sequence[dict[str, Any]]) -> list[LedgerEntry]:
    """The signed entries among what a node stores, those a fork proof holds included."""
    found = []
    for item in items:
        for wire in item.get("fork", [item]):
            try:
                found.append(from_wire(wire))
            except BadEntry:
                continue
    return found


def standing(table: dict[str, Any], peer: str) -> tuple[float, bool]:
    """A peer's (score, eligible) in a /v1/ledger answer; (0, False) for one it does not list."""
    for row in table["reputation"]:
        if row["peer_id"] == peer:
            return round(row["score"], 6), row["eligible"]
    return 0.0, False


def reputations(table: dict[str, Any]) -> dict[str, tuple[float, bool]]:
    return {row["peer_id"]: (round(row["score"], 6), row["eligible"]) for row in table["reputation"]}


async def wait_until(check: Callable[[], Awaitable[T | None]], timeout: float) -> T | None:
    """The first true value of `check` within `timeout` seconds, polled every second; else None."""
    with trio.move_on_after(timeout):
        while True:
            if value := await check():
                return value
            await trio.sleep(1)
    return None


async def establish(net: Testnet, client: httpx.AsyncClient) -> None:
    """Until every node has a say on every node, then until the network wrote its past down: every node
    stores a final checkpoint (where the code at hand makes them; elsewhere SETTLE_S goes by)."""
    everyone = [n.peer_id for n in net.nodes]

    async def all_have_a_say() -> bool:
        tables = [await view(client, n.url) for n in net.nodes]
        return all(standing(t, p)[1] for t in tables for p in everyone)

    if not await wait_until(all_have_a_say, ESTABLISH_S):
        raise TimeoutError(f"not every node earned its say within {ESTABLISH_S:g} s")

    async def closed() -> bool:
        held = [await stored(client, n.url) for n in net.nodes]
        return all(any("final" in item for item in items) for items in held)

    await wait_until(closed, SETTLE_S)


async def agreed(net: Testnet, client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The nodes' ledgers once they show one head (or after AGREE_S, as they are)."""

    async def one_head() -> list[dict[str, Any]] | None:
        tables = [await view(client, n.url) for n in net.nodes]
        return (
            tables
            if len({t["head"] for t in tables}) == 1 and not any(t["waiting"] for t in tables)
            else None
        )

    return await wait_until(one_head, AGREE_S) or [await view(client, n.url) for n in net.nodes]


# ---- the attackers


def passed(peer: Identity, template: LedgerEntry, by: Identity) -> dict[str, Any]:
    """A challenge of `peer` by `by` asking what `template`, an honest challenge, asked, answered right by
    `peer`: the template's right answers, signed again as its own, given to `by`, in rounds of their own."""
    record = copy.deepcopy(template.record)
    answers = []
    for answer in record["answers"]:
        if not answer["correct"]:
            continue
        round_id = uuid.uuid4().hex
        revealed = {**answer["reveal"]["body"], "round": round_id, "salt": "salt", "gateway": by.peer_id}
        digest = commitment_digest(round_id, revealed["model"], "salt", revealed["answer"])
        committed = {
            **answer["commitment"]["body"],
            "round": round_id,
            "digest": digest,
            "gateway": by.peer_id,
        }
        answer["commitment"] = sign(peer, "commitment", committed).to_wire()
        answer["reveal"] = sign(peer, "reveal", revealed).to_wire()
        answers.append(answer)
    record.update(challenge=uuid.uuid4().hex, peer=peer.peer_id, answers=answers)
    return record


async def template(net: Testnet, client: httpx.AsyncClient) -> LedgerEntry:
    """An honest challenge with two right answers at least, from node 0's ledger: its questions are the
    network's, and its rules digest the one the network's entries carry."""
    for entry in entries_in(await stored(client, net.nodes[0].url)):
        if entry.type == "challenge" and sum(a["correct"] for a in entry.record["answers"]) >= 2:
            return entry
    raise LookupError("no honest challenge with two right answers to copy")


class KnowsTheAnswers(RoundService):
    """A peer that answers every challenge right: it holds the file the questions come from."""

    def __init__(self, identity: Identity, transport: Transport, bank: Sequence[Item]) -> None:
        super().__init__(identity, transport, {}, lambda: [])
        self.bank = bank
        self.answers: dict[str, str] = {}

    async def commit(self, body: dict[str, Any]) -> Statement:
        request = request_from_wire(body["request"])
        asked = " ".join(m.content for m in request.messages)
        answer = next((i.answers[0] for i in self.bank if i.question in asked), "I don't know.")
        round_id = str(body["round"])
        self.answers[round_id] = answer
        digest = commitment_digest(round_id, request.model, "salt", answer)
        committed = {"round": round_id, "model": request.model, "digest": digest, "gateway": body[SENDER]}
        return sign(self.identity, "commitment", committed)

    async def reveal(self, body: dict[str, Any]) -> Statement:
        round_id = str(body["round"])
        answer = self.answers.pop(round_id)
        return sign(
            self.identity,
            "reveal",
            {
                "round": round_id,
                "model": body["model"],
                "answer": answer,
                "salt": "salt",
                "gateway": body[SENDER],
            },
        )


@dataclass(frozen=True)
class Forked:
    say: list[tuple[float, bool]]  # the forker's (score, eligible) on each node, after the gossip
    proof: list[bool]  # whether each node holds both of its entries
    heads: int  # how many different heads the nodes ended on
    rewritten: list[bool]  # whether each node took the entry it dated before the one it follows

    def gained(self) -> str:
        kept = [s for s in self.say if s[1]]
        say = f"kept its say on {len(kept)} of {len(self.say)} nodes" + (
            f" (score {max(s[0] for s in kept):.1f}, eligible)" if kept else ""
        )
        return (
            f"{say}; {sum(self.proof)} of {len(self.proof)} nodes held both entries; {self.heads} head(s); "
            f"its entry dated into its own past taken by {sum(self.rewritten)} node(s)"
        )


async def fork(net: Testnet, honest: LedgerEntry) -> Forked:
    """Earn a say and write an entry; try to write the next one dated before it; then give node 1 one
    entry and node 2 another with the same seq (each a challenge of a friend, asked as `honest` asked its
    own). See what is left."""
    identity, friend = Identity.generate(), Identity.generate()
    transport = Transport(identity, port=free_port())
    KnowsTheAnswers(identity, transport, load_file(EASY))
    model = ModelInfo("knows-the-answers", "fake", "none", 1024, True, "cpu")
    chain: list[LedgerEntry] = []
    given: dict[str, LedgerEntry] = {}
    served: set[str] = set()

    def entry(seq: int, prev: str, at: float) -> LedgerEntry:
        return make(identity, seq, prev, at, "challenge", passed(friend, honest, identity), honest.rules)

    async def serve(sender: str, body: dict[str, Any]) -> Any:
        if sender in given:
            served.add(sender)
        mine = [*chain, *([given[sender]] if sender in given else [])]
        yield {"entries": [e.to_wire() for e in mine[int(body["have"].get(identity.peer_id, 0)) :]]}
        yield {"more": False}

    transport.handle(LEDGER_PROTOCOL, serve)
    async with httpx.AsyncClient(timeout=30) as client:
        async with trio.open_nursery() as nursery:
            await nursery.start(transport.run)
            for node in net.nodes:
                await transport.connect(node.multiaddr)
            head: list[str | None] = [None]  # no head: nobody pulls from it until it has a say

            async def announce() -> None:
                while True:
                    info = PeerInfo(
                        identity.peer_id,
                        tuple(transport.listen_addrs),
                        (model,),
                        {},
                        "bench",
                        ledger_head=head[0],
                    )
                    await transport.publish(ANNOUNCE_TOPIC, to_wire(info))
                    await trio.sleep(1)

            nursery.start_soon(announce)

            async def has_a_say() -> bool:
                tables = [await view(client, n.url) for n in net.nodes]
                return all(standing(t, identity.peer_id)[1] for t in tables)

            if not await wait_until(has_a_say, ESTABLISH_S):
                raise TimeoutError("the forker never earned its say")
            chain.append(entry(0, GENESIS, time.time()))
            backwards = entry(1, chain[0].digest, chain[0].at - 60)

            async def written() -> bool:
                await transport.publish(LEDGER_TOPIC, chain[0].to_wire())
                tables = [await view(client, n.url) for n in net.nodes]
                return all(identity.peer_id in t["chains"] for t in tables)

            if not await wait_until(written, DELIVER_S):
                raise TimeoutError("the forker's first entry never reached every node")
            for _ in range(3):  # once every node holds what it would follow
                await transport.publish(LEDGER_TOPIC, backwards.to_wire())
                await trio.sleep(1)
            given.update({net.nodes[1].peer_id: entry(1, chain[0].digest, time.time())})
            given.update({net.nodes[2].peer_id: entry(1, chain[0].digest, time.time())})
            head[0] = "f" * 64  # a head nobody holds: every node pulls its chain now

            async def delivered() -> bool:
                return served == set(given)

            if not await wait_until(delivered, DELIVER_S):
                raise TimeoutError("node 1 or node 2 never pulled the forker's chain")
            nursery.cancel_scope.cancel()
        tables = await agreed(net, client)
        held = [await stored(client, n.url) for n in net.nodes]
    digests = {e.digest for e in given.values()}
    return Forked(
        [standing(t, identity.peer_id) for t in tables],
        [digests <= {e.digest for e in entries_in(items)} for items in held],
        len({t["head"] for t in tables}),
        [
            backwards.digest in {e.digest for e in entries_in([i for i in items if "fork" not in i])}
            for items in held
        ],
    )


@dataclass(frozen=True)
class Backdated:
    pair: list[tuple[tuple[float, bool], tuple[float, bool]]]  # attacker's and friend's, on each node
    honest: list[int]  # on each node, how many honest nodes have a say
    tables: int  # how many different reputation tables the nodes ended on

    def gained(self) -> str:
        holding = [p for p in self.pair if p[0][1] or p[1][1]]
        scores = sorted({s for p in holding for s, eligible in p if eligible})
        took = f"the pair had a say on {len(holding)} of {len(self.pair)} nodes" + (
            f" (scores {', '.join(f'{s:.1f}' for s in scores)})" if holding else ""
        )
        return f"{took}; honest nodes with a say, per node: {self.honest}; {self.tables} table(s)"


async def backdate(net: Testnet, honest: LedgerEntry) -> Backdated:
    """Post a fresh identity's challenge of a friend dated at=1, and the friend's of it at=2, each asked as
    `honest` asked its own."""
    attacker, friend = Identity.generate(), Identity.generate()
    early = [
        make(attacker, 0, GENESIS, 1.0, "challenge", passed(friend, honest, attacker), honest.rules),
        make(friend, 0, GENESIS, 2.0, "challenge", passed(attacker, honest, friend), honest.rules),
    ]
    transport = Transport(attacker, port=free_port())
    async with httpx.AsyncClient(timeout=30) as client:
        async with trio.open_nursery() as nursery:
            await nursery.start(transport.run)
            for node in net.nodes:
                await transport.connect(node.multiaddr)

            async def held() -> bool:
                for entry in early:
                    await transport.publish(LEDGER_TOPIC, entry.to_wire())
                tables = [await view(client, n.url) for n in net.nodes]
                return all(e.gateway in t["chains"] for t in tables for e in early)

            if not await wait_until(held, DELIVER_S):
                raise TimeoutError("the backdated entries never reached every node")
            nursery.cancel_scope.cancel()
        tables = await agreed(net, client)
    everyone = [n.peer_id for n in net.nodes]
    return Backdated(
        [(standing(t, attacker.peer_id), standing(t, friend.peer_id)) for t in tables],
        [sum(standing(t, p)[1] for p in everyone) for t in tables],
        len({json.dumps(reputations(t), sort_keys=True) for t in tables}),
    )


async def attacks(net: Testnet) -> tuple[Forked, Backdated]:
    async with httpx.AsyncClient(timeout=30) as client:
        await establish(net, client)
        honest = await template(net, client)
    return await fork(net, honest), await backdate(net, honest)


def rows() -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as directory, started(network(Path(directory) / "net")) as net:
        forked, backdated = trio.run(attacks, net)
    return measured(ATTACKS, GAINED_BEFORE, BEFORE, {"fork": forked.gained(), "backdate": backdated.gained()})


if __name__ == "__main__":
    print_rows(rows())
