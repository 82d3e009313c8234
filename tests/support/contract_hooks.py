"""Schemathesis hooks of the contract fuzz (tests/integration/test_openapi_contract.py), loaded by its
`st run` through SCHEMATHESIS_HOOKS: keep what the fuzz asks of a real model cheap, and ask now and
then for a model the node serves, so that answers get generated and not only refused.

Schemathesis checks a case again after a hook changed it, so an invalid body made valid here is
judged as valid.
"""

from __future__ import annotations

import os
import zlib

import schemathesis

MAX_TOKENS = 4  # enough for a whole answer, streamed or not, in a fraction of a second
ASKED = (os.environ["CONTRACT_MODEL"], "swarm")  # the model the node hosts, and the network as one
GENERATING = ("/v1/chat/completions", "/v1/completions")


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    body = case.body
    if not isinstance(body, dict):
        return case
    generated = body.get("model")
    if isinstance(generated, str):
        # Stable from run to run, spread over the generated names: a third keep theirs (mostly a 404).
        pick = zlib.crc32(generated.encode()) % (len(ASKED) + 1)
        body["model"] = ASKED[pick] if pick < len(ASKED) else generated
    if case.path in GENERATING:
        # Left out or null, max_tokens is the node's default, 256: the cap applies to those too.
        asked = body.get("max_tokens")
        if asked is None or _integer(asked):
            body["max_tokens"] = min(asked or MAX_TOKENS, MAX_TOKENS)
        if _integer(body.get("max_completion_tokens")):
            body["max_completion_tokens"] = min(body["max_completion_tokens"], MAX_TOKENS)
    if case.path == "/v1/accel/profile":
        # A real profile runs every method on real tasks for minutes: only its refusals are fuzzed.
        body["models"] = ["not-hosted-here"]
    return case
