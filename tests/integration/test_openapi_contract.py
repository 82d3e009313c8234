"""The published contract is the real one: a property-based fuzz of a real node's /openapi.json.

Schemathesis generates requests from the schema, valid and invalid ones, sends them over
HTTP to a node serving a real model, and checks every answer against the same schema: a
documented status, a documented content type, a body that conforms (errors included), the
documented headers, no server error, invalid input refused, and for a method a path does
not take, a 405 that says in Allow which it does. Its hooks keep generation cheap and
ask now and then for a model the node serves (tests/support/contract_hooks.py). The seed
is fixed so a run is reproducible; another seed explores other cases, and a failure
prints the curl command that reproduces it. Slow, as every test here (conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testnet.process import NodeProcess

MODEL = "smollm2-135m-instruct"
HOOKS = Path(__file__).resolve().parents[1] / "support" / "contract_hooks.py"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "unsupported_method",
    "allow_header_conformance",
)
EXAMPLES = 12  # per operation, in each pass of the fuzzing phase
SEED = "20261201"
MAX_TIME_S = 75  # the fuzzing phase repeats until it is spent; the whole test stays under two minutes


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    with NodeProcess(
        tmp_path_factory.mktemp("contract") / "data", "--model", MODEL, "--context-length", "512"
    ) as n:
        yield n


def test_every_answer_is_the_published_one(node: NodeProcess, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{node.url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        SEED,
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--max-time",
        str(MAX_TIME_S),
        "--generation-database",
        "none",
        # A path parameter that takes any string (GET /v1/models/{name}) has no invalid value to send.
        "--suppress-health-check",
        "filter_too_much",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "CONTRACT_MODEL": MODEL}
    run = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=MAX_TIME_S + 60
    )
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-20000:]
    assert "Test cases:" in report, report[-2000:]
