"""Say per domain on a real network: node processes over libp2p challenging each other every second.

The models are stub servers behind the openai backend (bench.soak.stub_server), so that what each
knows is certain and a say is earned in seconds: "logicians" answer the bank's logic questions right
and nothing else, "medics" its medical ones, a random answerer guesses. Everything else is real: the
nodes, the challenges through commit and reveal, the ledger's grading and test, `/v1/ledger`.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from bench.soak import attacker, stub_server
from routing.datasets import challenge_bank, domain_of
from testnet.process import NodeProcess
from testnet.testnet import say_holders

BANK = challenge_bank()
QUESTIONS = {item.messages[-1].content: item for item in BANK.items.values()}


def knowing(*domains: str) -> Callable[[str], str]:
    """A model right on the bank's questions of `domains` and wrong on every other."""

    def answer(prompt: str) -> str:
        item = QUESTIONS.get(prompt)
        if item is None:
            return "A"  # a judge's task: not what these tests are about
        return item.answers[0] if domain_of(item) in domains else "I do not know"

    return answer


class Network:
    """Node processes started one by one, the first the others' bootstrap, each on its own stub model."""

    def __init__(self, directory: Path, stack: ExitStack) -> None:
        self.directory, self.stack = directory, stack
        self.urls: list[str] = []
        self.bootstrap: list[str] = []

    def start(self, name: str, model: Callable[[str], str]) -> str:
        """The node's peer id, once it is up."""
        url = self.stack.enter_context(stub_server(model))
        args = ["--model", name, "--backend", "openai", "--url", url, "--challenge-interval", "1"]
        args += ["--announce-interval", "1", *(["--bootstrap", self.bootstrap[0]] if self.bootstrap else [])]
        process = self.stack.enter_context(NodeProcess(self.directory / name, *args))
        state = json.loads((process.data_dir / "node.json").read_text())
        self.bootstrap = self.bootstrap or [state["p2p_addrs"][0]]
        self.urls.append(process.url)
        return str(state["peer_id"])


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    with ExitStack() as stack:
        yield Network(tmp_path, stack)


def wait_for(what: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if what():
                return True
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(2)
    return False


def test_say_is_earned_per_domain_a_newcomer_gets_past_a_sole_holder_and_a_guesser_never_gets_one(
    network: Network,
) -> None:
    logicians = [network.start(f"logician-{i}", knowing("logic")) for i in range(3)]
    medic = network.start("medic", knowing("logic", "medical"))  # logic too, and alone on medicine
    guesser = network.start("guesser", attacker("random", random.randrange(1000)))
    url = network.urls[0]

    def holders() -> dict[str, set[str]]:
        return say_holders(url)[0]

    # Logic: all four that know it hold a say; civics (general): nobody, for nobody knows it; the medic
    # alone holds medicine, which stays open (bootstrap rules) with fewer than three holders.
    assert wait_for(lambda: set(holders()["logic"]) >= {*logicians, medic}, 240), holders()
    assert wait_for(lambda: medic in holders()["medical"], 120), holders()
    # A capable newcomer on medicine: the sole holder's challenges can't keep it out.
    newcomer = network.start("newcomer", knowing("medical"))
    assert wait_for(lambda: newcomer in holders()["medical"], 180), holders()
    now, open_ = say_holders(url)
    assert now["general"] == set() and open_["medical"] and not open_["logic"]
    assert newcomer not in now["logic"]
    # The guesser answered every domain all along, and holds a say in none.
    assert all(guesser not in peers for peers in now.values())
    summary = httpx.get(f"{url}/v1/ledger", params={"limit": 0}, timeout=30).json()
    guessed = {row["peer_id"]: row for row in summary["reputation"]}[guesser]["domains"]
    assert sum(d["asked"] for d in guessed.values()) >= 20
