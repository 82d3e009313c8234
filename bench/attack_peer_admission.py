"""Attacks on what a node does for any peer with a key, run against real nodes: reading another answerer's
answer before committing, overwriting it with a second commitment, one ballot request of 10,000 pairs,
more requests at once than a peer's share, and a stranger using the models.

    python -m bench.attack_peer_admission

Every attacker is a libp2p peer in this process with a fresh identity, speaking the nodes' protocols as
any peer may. The first four run against one node serving any peer (`--serve-peers any`, a quota of
QUOTA requests a minute); the stranger's, also against a 3-node network whose nodes challenge each other
with easy questions (tests/support/challenges.jsonl) until they have earned their say, under the default
policy. `rows()` runs them all and says what each attacker gained; `gained_before` is the same code run
against the commit before the fixes, `PYTHONPATH` pointing at a worktree of it (whose nodes take none of
the policy flags, and serve every peer without bound).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from bench.holes import measured
from core.identity import Identity
from core.records import GenerationRequest, Message, to_wire
from core.statements import commitment_digest, sign
from node.config import NodeConfig
from node.network import GENERATE_PROTOCOL
from node.ports import free_port
from node.rounds import ROUND_PROTOCOL
from node.transport import PeerUnavailable, RemoteError, RequestTimeout, Transport
from testnet.testnet import Testnet, TestnetNode

SMOLLM = "smollm2-135m-instruct"
MODELS = [SMOLLM, "gemma3-270m", "qwen2.5-coder-0.5b-instruct"]
EASY = Path(__file__).parents[1] / "tests" / "support" / "challenges.jsonl"
QUESTION = "What is the capital of France? Answer in one word."
QUOTA = 8  # requests a minute per peer on the open node
FLOOD = 10  # requests the flooder sends at once; a peer's share is 4 by default
PAIRS = 10_000
JUDGE_WINDOW_S = 20.0  # how long the node is watched working for the 10,000 pairs
ESTABLISH_S = 300.0  # every node of the 3-node network earning its say on 2 shared cores
BEFORE = "4a4f715"
# Whether the nodes run here know the operator's policy (the commit before the fixes had none).
POLICY = "serve_peers" in {f.name for f in dataclasses.fields(NodeConfig)}


def open_node(directory: Path) -> Testnet:
    """One node serving any peer, up to QUOTA requests a minute each."""
    policy = ("--serve-peers", "any", "--peer-requests-per-minute", str(QUOTA)) if POLICY else ()
    return Testnet(1, [SMOLLM], directory, extra_args=("--context-length", "1024", *policy))


def say_network(directory: Path) -> Testnet:
    """Three nodes under the default policy, challenging each other until they have a say."""
    return Testnet(3, MODELS, directory, challenge_interval=2, challenge_file=EASY)


@asynccontextmanager
async def peer(directory: Path, name: str, nodes: list[TestnetNode]) -> AsyncIterator[Transport]:
    """A fresh identity on a libp2p transport of its own, connected to `nodes`."""
    identity = Identity.load_or_create(directory / f"{name}-{uuid.uuid4().hex[:8]}")
    transport = Transport(identity, port=free_port())
    async with trio.open_nursery() as nursery:
        await nursery.start(transport.run)
        for node in nodes:
            await transport.connect(node.multiaddr)
        yield transport
        nursery.cancel_scope.cancel()


async def ask(transport: Transport, node: TestnetNode, body: dict[str, Any], timeout: float = 120) -> Any:
    """A round operation: its statement's body, or the refusal's words."""
    try:
        reply = await transport.request(node.peer_id, ROUND_PROTOCOL, body, timeout=timeout)
    except (PeerUnavailable, RemoteError, RequestTimeout) as exc:
        return f"{type(exc).__name__}: {exc}"
    return reply["error"] if "error" in reply else reply["statement"]


def commit_body(round_id: str, question: str, answerers: list[list[str]]) -> dict[str, Any]:
    request = GenerationRequest(SMOLLM, (Message("user", question),), max_tokens=8, temperature=0.0)
    return {
        "op": "commit",
        "round": round_id,
        "request": to_wire(request),
        "answerers": answerers,
        "closes_in_s": 120.0,
    }


def revealed_as_committed(reveal: Any, commitment: Any, round_id: str) -> str:
    """'matched' when the reveal opens the commitment, else what went wrong."""
    if not isinstance(reveal, dict) or not isinstance(commitment, dict):
        return f"failed: {reveal if not isinstance(reveal, dict) else commitment}"
    r, c = reveal["body"], commitment["body"]
    digest = commitment_digest(round_id, SMOLLM, r["salt"], r["answer"])
    return "matched" if digest == c["digest"] else "failed: the reveal does not match the commitment"


async def read_before_commit(node: TestnetNode, directory: Path) -> dict[str, Any]:
    """A co-answerer, told of the round by its own commit request, asks the honest answerer for its
    reveal before committing; then commits, and the gateway reveals with both commitments."""
    round_id = uuid.uuid4().hex
    async with peer(directory, "gateway", [node]) as gateway, peer(directory, "snoop", [node]) as snoop:
        answerers = [[node.peer_id, SMOLLM], [snoop.peer_id, "copy"]]
        committed = await ask(gateway, node, commit_body(round_id, QUESTION, answerers))
        snooped = await ask(snoop, node, {"op": "reveal", "round": round_id, "model": SMOLLM})
        digest = commitment_digest(round_id, "copy", "salt", "Paris")
        own = sign(snoop.identity, "commitment", {"round": round_id, "model": "copy", "digest": digest})
        shown = [committed, own.to_wire()] if isinstance(committed, dict) else []
        reveal = {"op": "reveal", "round": round_id, "model": SMOLLM, "commitments": shown}
        honest = await ask(gateway, node, reveal)
    read = snooped["body"]["answer"] if isinstance(snooped, dict) else None
    return {"read": read, "snoop_told": snooped, "honest": revealed_as_committed(honest, committed, round_id)}


async def second_commit(node: TestnetNode, directory: Path) -> dict[str, Any]:
    """A peer that knows the round commits again for the same round and model, to another question."""
    round_id = uuid.uuid4().hex
    async with peer(directory, "gateway", [node]) as gateway, peer(directory, "spoiler", [node]) as spoiler:
        answerers = [[node.peer_id, SMOLLM]]
        committed = await ask(gateway, node, commit_body(round_id, QUESTION, answerers))
        spoiled = await ask(spoiler, node, commit_body(round_id, "Say BANANA.", answerers))
        shown = [committed] if isinstance(committed, dict) else []
        reveal = {"op": "reveal", "round": round_id, "model": SMOLLM, "commitments": shown}
        honest = await ask(gateway, node, reveal)
    accepted = isinstance(spoiled, dict)
    told = "accepted" if accepted else spoiled
    return {
        "accepted": accepted,
        "spoiler_told": told,
        "honest": revealed_as_committed(honest, committed, round_id),
    }


def completion_tokens(node: TestnetNode) -> float:
    text = httpx.get(f"{node.url}/metrics", timeout=30).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("swarm_completion_tokens_total{")
    )


async def judge_flood(node: TestnetNode, directory: Path) -> dict[str, Any]:
    """One judge request of PAIRS pairs; the node's generated tokens watched for JUDGE_WINDOW_S."""
    before = completion_tokens(node)
    body = {
        "op": "judge",
        "round": uuid.uuid4().hex,
        "question": QUESTION,
        "answers": {"0": "Paris", "1": "Lyon"},
        "pairs": [[0, 1]] * PAIRS,
        "check": [0, 1],
    }
    async with peer(directory, "flooder", [node]) as flooder:
        started = time.monotonic()
        told = await ask(flooder, node, body, timeout=JUDGE_WINDOW_S)
        answered_in = time.monotonic() - started
        await trio.sleep(max(0.0, JUDGE_WINDOW_S - answered_in))
    return {"told": told, "answered_in_s": answered_in, "tokens": completion_tokens(node) - before}


async def generate(transport: Transport, node: TestnetNode, max_tokens: int = 16) -> str:
    """'served', or the refusal's words."""
    request = GenerationRequest(SMOLLM, (Message("user", QUESTION),), max_tokens=max_tokens, temperature=0.0)
    try:
        async with transport.stream(
            node.peer_id, GENERATE_PROTOCOL, {"request": to_wire(request)}, timeout=300
        ) as frames:
            async for frame in frames:
                if "done" in frame:
                    return "served"
                if "error" in frame:
                    return str(frame["error"].get("message"))
    except (PeerUnavailable, RemoteError, RequestTimeout) as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ended without an answer"


async def concurrency_flood(node: TestnetNode, directory: Path) -> dict[str, Any]:
    """FLOOD generations at once from one peer, and one from another peer meanwhile."""
    outcomes: list[str] = []
    other: dict[str, Any] = {}
    async with (
        peer(directory, "flooder", [node]) as flooder,
        peer(directory, "bystander", [node]) as bystander,
    ):

        async def flood() -> None:
            outcomes.append(await generate(flooder, node, max_tokens=32))

        async def bystand() -> None:
            await trio.sleep(0.5)
            started = time.monotonic()
            other["outcome"] = await generate(bystander, node)
            other["took_s"] = time.monotonic() - started

        async with trio.open_nursery() as nursery:
            for _ in range(FLOOD):
                nursery.start_soon(flood)
            nursery.start_soon(bystand)
    refusals = [o for o in outcomes if o != "served"]
    return {
        "admitted": outcomes.count("served"),
        "refused": len(refusals),
        "refusal": refusals[0] if refusals else None,
        "bystander": other["outcome"],
        "bystander_took_s": other["took_s"],
    }


async def stranger(nodes: list[TestnetNode], directory: Path, times: int) -> dict[str, Any]:
    """A fresh peer asks the first node /swarm/generate `times` times in a row."""
    async with peer(directory, "stranger", nodes) as transport:
        outcomes = [await generate(transport, nodes[0], max_tokens=4) for _ in range(times)]
    refusals = [o for o in outcomes if o != "served"]
    return {"served": outcomes.count("served"), "refusal": refusals[0] if refusals else None}


def wait_for_say(net: Testnet) -> None:
    """Until every node of `net` has earned its say, so the network is out of its bootstrap."""
    deadline = time.monotonic() + ESTABLISH_S
    while time.monotonic() < deadline:
        view = httpx.get(f"{net.nodes[0].url}/v1/ledger?limit=0", timeout=30).json()
        eligible = {r["peer_id"] for r in view["reputation"] if r["eligible"]}
        if {n.peer_id for n in net.nodes} <= eligible:
            return
        time.sleep(1)
    raise RuntimeError(f"the nodes did not all earn their say within {ESTABLISH_S:g} s")


async def measure(directory: Path) -> dict[str, dict[str, Any]]:
    with open_node(directory / "open") as net:
        node = net.nodes[0]
        found = {
            "read": await read_before_commit(node, directory),
            "second": await second_commit(node, directory),
            "flood": await concurrency_flood(node, directory),
            "quota": await stranger(net.nodes, directory, QUOTA + 4),
            # Last: before the fix, the node goes on judging 10,000 pairs long after the attacker left.
            "judge": await judge_flood(node, directory),
        }
    with say_network(directory / "say") as net:
        wait_for_say(net)
        found["stranger"] = await stranger(net.nodes, directory, 5)
    return found


def gained(found: dict[str, dict[str, Any]]) -> dict[str, str]:
    read, second, judge, flood = found["read"], found["second"], found["judge"], found["flood"]
    quota, stranger_ = found["quota"], found["stranger"]
    return {
        "read": (f"read the answer: {read['read']!r}" if read["read"] else "read nothing (refused)")
        + f"; the honest reveal {read['honest']}",
        "second": f"second commit {'accepted' if second['accepted'] else 'refused'}; "
        f"the honest reveal {second['honest']}",
        "judge": f"{judge['tokens']:g} tokens generated in {JUDGE_WINDOW_S:g} s for it; "
        f"answered in {judge['answered_in_s']:.1f} s",
        "flood": f"{flood['admitted']} of {FLOOD} admitted at once; another peer's request "
        f"{flood['bystander']} in {flood['bystander_took_s']:.1f} s",
        "quota": f"{quota['served']} of {QUOTA + 4} served in a minute (--serve-peers any, quota {QUOTA})",
        "stranger": f"{stranger_['served']} of 5 served by a network out of its bootstrap",
    }


# What the same attacks gained on BEFORE (its nodes serve every peer, without bound).
GAINED_BEFORE = {
    "read": "read the answer: 'The capital of France is Paris.'; the honest reveal failed: "
    "nothing to reveal (the snoop's reveal had removed it)",
    "second": "second commit accepted; the honest reveal failed: the reveal does not match the commitment",
    "judge": "104 tokens generated in 20 s for it (13 of its 10,002 judgments, still going); "
    "no answer within 20 s",
    "flood": "10 of 10 admitted at once; another peer's request served in 12.7 s",
    "quota": f"{QUOTA + 4} of {QUOTA + 4} served in a minute (no quota)",
    "stranger": "5 of 5 served by a network out of its bootstrap",
}
ATTACKS = {
    "read": ("4. commit-reveal hides nothing", "a co-answerer asks another's reveal before committing"),
    "second": ("4. commit-reveal hides nothing", "a second commit for the same round and model"),
    "judge": ("5. one peer orders unbounded work", f"one judge request of {PAIRS} pairs"),
    "flood": ("5. one peer orders unbounded work", f"{FLOOD} generations at once from one peer"),
    "quota": ("7. the models lent to anyone", "a peer asks /swarm/generate without pause"),
    "stranger": ("7. the models lent to anyone", "a peer without a say asks /swarm/generate"),
}


def rows() -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="attack-admission-") as directory:
        now = gained(trio.run(measure, Path(directory)))
    return measured(ATTACKS, GAINED_BEFORE, BEFORE, now)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="attack-admission-") as directory:
        for key, value in trio.run(measure, Path(directory)).items():
            print(key, value, sep=": ")
