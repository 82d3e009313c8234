"""A round on a real 3-node testnet whose judges read token probabilities: what their signed ballots carry."""

from __future__ import annotations

import pytest

import swarm
from core.statements import from_wire
from testnet.testnet import Testnet

MODELS = ["smollm2-135m-instruct", "gemma3-270m", "qwen2.5-coder-0.5b-instruct"]
QUESTION = "What is the capital of France? Answer in one word."


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Testnet:
    directory = tmp_path_factory.mktemp("probability-judges")
    config = directory / "node.toml"
    config.write_text('judge_reading = "probability"\n')
    extra = ("--context-length", "1024", "--config", str(config))
    with Testnet(3, MODELS, directory / "net", extra_args=extra) as testnet:
        yield testnet


def test_ballots_carry_probabilities_and_likelihoods_signed_by_their_judges(net: Testnet) -> None:
    with swarm.Client(net.nodes[0].url, timeout=300) as client:
        answer = client.chat(QUESTION, model="swarm", max_tokens=16, temperature=0)
    report = answer.swarm
    assert isinstance(report, swarm.RoundReport) and report.degraded is None, report.missed
    assert not any("malformed" in str(m) for m in report.missed)
    ballots = [from_wire(raw, kind="ballot") for raw in report.raw["ballots"]]  # each verifies
    assert len(ballots) == 3
    for ballot in ballots:
        body = ballot.body
        assert body["reading"] == "probability"
        assert len(body["probabilities"]) == len(body["votes"])
        for (_, _, letter), p in zip(body["votes"], body["probabilities"], strict=True):
            assert 0 <= p <= 1 and letter == ("A" if p > 0.5 else "B" if p < 0.5 else "U")
        assert set(body["good"]) == set(body["verdicts"])
        in_pairs = {str(c) for a, b, _ in body["votes"] for c in (a, b)}
        assert set(body["likelihoods"]) == in_pairs
        assert all(v is None or v <= 0 for v in body["likelihoods"].values())
    # the round counted them: every judge that was given pairs voted
    assert {v.judge for v in report.votes} == {b.signer for b in ballots if b.body["votes"]}
