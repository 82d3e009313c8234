"""The ledger's history against hostile peers on a real 3-node testnet: a signer that forks its chain and
a fresh key that backdates entries to the network's first moments.

The attackers are `bench.attack_ledger_history`'s, so that what the benchmark reports is what is tested
here. The nodes earn their say by challenging each other with easy questions, then run long enough to
write their past down; the fork comes first, since a backdating that worked would take the honest nodes'
say (and their challenges of the forker with it).
"""

from __future__ import annotations

import pytest
import trio

from bench.attack_ledger_history import Backdated, Forked, attacks, network


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Forked, Backdated]:
    with network(tmp_path_factory.mktemp("history") / "net") as net:
        return trio.run(attacks, net)


def test_a_fork_is_proven_on_every_node_and_costs_the_forker_its_say(
    outcomes: tuple[Forked, Backdated],
) -> None:
    forked = outcomes[0]
    assert forked.say == [(0.0, False)] * 3, f"the forker: {forked.gained()}"
    assert forked.proof == [True] * 3, "every node holds both signed entries"
    assert forked.heads == 1, "the nodes end on one head"
    assert forked.rewritten == [False] * 3, "no node took its entry dated into its own past"


def test_a_backdated_history_gains_no_say_and_the_nodes_agree(outcomes: tuple[Forked, Backdated]) -> None:
    backdated = outcomes[1]
    assert all(not a[1] and not f[1] for a, f in backdated.pair), f"the backdating pair: {backdated.gained()}"
    assert backdated.honest == [3, 3, 3], "every honest node keeps its say"
    assert backdated.tables == 1, "the nodes end on one table"
