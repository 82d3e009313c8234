"""How a node decides it is reachable from its peers' dial backs: most of those that answered must have
reached it, so one lying peer among three can't make a node behind NAT skip its relay, nor the reverse."""

from __future__ import annotations

from node.transport.reachability import verdict

ADDR = "/ip4/198.51.100.9/tcp/8421"


def test_one_liar_of_three_does_not_decide() -> None:
    lied_reached = verdict(
        {"liar": {ADDR: "reachable"}, "b": {ADDR: "unreachable: timeout"}, "c": {ADDR: "unreachable: x"}}
    )
    assert lied_reached.status == "private" and lied_reached.confirmed_by == ("liar",)
    lied_unreached = verdict(
        {"liar": {ADDR: "unreachable: no"}, "b": {ADDR: "reachable"}, "c": {ADDR: "reachable"}}
    )
    assert lied_unreached.status == "public" and lied_unreached.reachable == (ADDR,)


def test_no_answer_is_no_verdict_and_refusals_count_as_not_reached() -> None:
    assert verdict({}).status == "unknown"
    refused = verdict({"b": {ADDR: "refused: 198.51.100.9 is not where your connection comes from"}})
    assert refused.status == "private" and refused.denied_by == ("b",)
