"""A real node process serving a real model, used through the SDK, the official openai client and raw HTTP."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

import swarm
from routing.table import ClusterTable
from swarm import errors
from testnet.process import NodeProcess
from tests.support.observe import metric

MODEL = "smollm2-135m-instruct"
ROUTE = swarm.SwarmOptions(mode="route")
QUESTION = "What is 2+2?"
JSON_BODY = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> NodeProcess:
    with NodeProcess(
        tmp_path_factory.mktemp("node") / "data", "--model", MODEL, "--context-length", "512"
    ) as n:
        yield n


@pytest.fixture(scope="module")
def locked_node(tmp_path_factory: pytest.TempPathFactory) -> NodeProcess:
    """A node with an API key and a wait line of one, to reach 401 and 429."""
    args = ("--model", MODEL, "--context-length", "512", "--api-key", "s3cret", "--max-waiting", "1")
    with NodeProcess(tmp_path_factory.mktemp("locked") / "data", *args) as n:
        yield n


def _error(response: httpx.Response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"], body
    return body["error"]


# ---- the happy paths


def test_health_and_models_describe_the_served_model(node: NodeProcess) -> None:
    with swarm.Client(node.url) as client:
        health = client.health()
        models = client.models()
    assert health.status == "ok"
    assert health.models == {MODEL: "ready"}
    assert [m.id for m in models] == [MODEL, "swarm"]  # the network as one model, answered by routing
    assert models[0].backend == "llamacpp"
    assert models[0].context_length == 512


def test_sdk_chat_answers_with_usage(node: NodeProcess) -> None:
    with swarm.Client(node.url) as client:
        answer = client.chat(QUESTION, model=MODEL, max_tokens=24, temperature=0)
    assert "4" in answer.text
    assert answer.model == MODEL
    assert answer.usage is not None and 0 < answer.usage.completion_tokens <= 24
    assert answer.finish_reason in ("stop", "length")


def test_sdk_stream_matches_the_whole_answer(node: NodeProcess) -> None:
    with swarm.Client(node.url) as client:
        whole = client.chat(QUESTION, model=MODEL, max_tokens=24, temperature=0)
        chunks = list(client.stream_chat(QUESTION, model=MODEL, max_tokens=24, temperature=0))
    assert len(chunks) > 3
    assert "".join(c.text for c in chunks) == whole.text
    assert (
        chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    )
    assert any(c.finish_reason == whole.finish_reason for c in chunks)


async def test_async_client_works_under_trio(node: NodeProcess) -> None:
    async with swarm.AsyncClient(node.url) as client:
        answer = await client.complete("The capital of France is", model=MODEL, max_tokens=8, temperature=0)
        pieces = [c.text async for c in client.stream_chat("Say hello.", model=MODEL, max_tokens=8)]
    assert answer.text.strip()
    assert "".join(pieces).strip()


def test_official_openai_client_chat_stream_completion_and_models(node: NodeProcess) -> None:
    client = openai.OpenAI(base_url=f"{node.url}/v1", api_key="unused")
    chat = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": QUESTION}], max_tokens=24, temperature=0
    )
    assert "4" in chat.choices[0].message.content
    assert chat.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=24,
        temperature=0,
        stream=True,
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert streamed == chat.choices[0].message.content
    completion = client.completions.create(model=MODEL, prompt="1, 2, 3, 4,", max_tokens=6, temperature=0)
    assert completion.choices[0].text.strip()
    assert [m.id for m in client.models.list()] == [MODEL, "swarm"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])


def test_metrics_count_requests_and_tokens(node: NodeProcess) -> None:
    before = metric(node.url, "swarm_completion_tokens_total", model=MODEL)
    requests_before = metric(node.url, "swarm_requests_total", model=MODEL, status="200")
    with swarm.Client(node.url) as client:
        answer = client.chat("Count to three.", model=MODEL, max_tokens=10)
    assert (
        metric(node.url, "swarm_completion_tokens_total", model=MODEL)
        == before + answer.usage.completion_tokens
    )
    assert metric(node.url, "swarm_requests_total", model=MODEL, status="200") == requests_before + 1
    assert metric(node.url, "swarm_request_latency_seconds_count", model=MODEL) >= 1


def test_openapi_schema_lists_the_endpoints(node: NodeProcess) -> None:
    schema = httpx.get(f"{node.url}/openapi.json").json()
    for path in ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics"):
        assert path in schema["paths"], path


# ---- bad input: precise status, OpenAI-style body, and the node keeps serving


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": MODEL}, 400, None, "messages"),
        ({"model": MODEL, "messages": []}, 400, None, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, 400, None, "model"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}, 400, None, "messages.0.role"),
        (
            {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]},
            404,
            "model_not_found",
            "model",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0},
            400,
            None,
            "max_tokens",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000},
            400,
            None,
            "max_tokens",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "temperature": 9},
            400,
            None,
            "temperature",
        ),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 3}, 400, None, "n"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "word " * 2000}]},
            400,
            "context_length_exceeded",
            "messages",
        ),
    ],
    ids=[
        "no-messages",
        "empty-messages",
        "no-model",
        "bad-role",
        "unknown-model",
        "zero-max-tokens",
        "huge-max-tokens",
        "bad-temperature",
        "n-choices",
        "prompt-over-context",
    ],
)
def test_bad_requests_get_openai_errors(
    node: NodeProcess, body: dict, status: int, code: str | None, param: str
) -> None:
    response = httpx.post(f"{node.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == status, response.text
    error = _error(response)
    assert error["param"] == param
    assert error["type"] in ("invalid_request_error",)
    if code:
        assert error["code"] == code


def test_prompt_over_context_says_how_long_it_was(node: NodeProcess) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "word " * 2000}]}
    error = _error(httpx.post(f"{node.url}/v1/chat/completions", json=body, timeout=30))
    assert re.search(r"prompt is \d{4} tokens but the model's context holds 512", error["message"]), error


def test_streamed_bad_request_fails_before_the_stream_starts(node: NodeProcess) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "word " * 2000}], "stream": True}
    response = httpx.post(f"{node.url}/v1/chat/completions", json=body, timeout=30)
    assert response.status_code == 400
    assert _error(response)["code"] == "context_length_exceeded"


def test_malformed_json_is_a_clear_400(node: NodeProcess) -> None:
    response = httpx.post(
        f"{node.url}/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert _error(response)["code"] == "invalid_json"


def test_oversized_body_is_refused_with_413(node: NodeProcess) -> None:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * (5 << 20)}]})
    response = httpx.post(f"{node.url}/v1/chat/completions", content=body, timeout=30)
    assert response.status_code == 413
    assert _error(response)["code"] == "request_too_large"


def test_sdk_raises_typed_errors(node: NodeProcess) -> None:
    with swarm.Client(node.url) as client:
        with pytest.raises(errors.ModelNotFound) as missing:
            client.chat("hi", model="gpt-9")
        with pytest.raises(errors.BadRequest) as too_long:
            client.chat("word " * 2000, model=MODEL)
    assert missing.value.status == 404 and missing.value.code == "model_not_found"
    assert too_long.value.code == "context_length_exceeded"


@pytest.mark.parametrize("stream", [True, False], ids=["streamed", "whole"])
def test_client_disconnect_stops_generation(node: NodeProcess, stream: bool) -> None:
    disconnects = metric(node.url, "swarm_client_disconnects_total", model=MODEL)
    tokens_before = metric(node.url, "swarm_completion_tokens_total", model=MODEL)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a very long story."}],
        "max_tokens": 400,
        "stream": stream,
        "temperature": 0.8,
    }
    if stream:
        with httpx.stream("POST", f"{node.url}/v1/chat/completions", json=body, timeout=30) as response:
            received = [line for _, line in zip(range(6), response.iter_lines(), strict=False)]
        assert any(line.startswith("data:") for line in received)
    else:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{node.url}/v1/chat/completions", json=body, timeout=0.5)
    deadline = time.monotonic() + 10
    while metric(node.url, "swarm_client_disconnects_total", model=MODEL) == disconnects:
        assert time.monotonic() < deadline, "the node never noticed the client left"
        time.sleep(0.1)
    # The engine stopped early instead of generating 400 tokens (~4 s) for nobody: its one slot is
    # free at once for the next request.
    with swarm.Client(node.url) as client:
        started = time.monotonic()
        assert client.chat("Say yes.", model=MODEL, max_tokens=4).text
        assert time.monotonic() - started < 1.5
    assert metric(node.url, "swarm_completion_tokens_total", model=MODEL) - tokens_before < 400


def test_sdk_deadline_is_total_not_per_read(node: NodeProcess) -> None:
    with swarm.Client(node.url) as client:
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded):
            for _ in client.stream_chat("Write a very long story.", model=MODEL, max_tokens=400, timeout=0.5):
                pass
        assert time.monotonic() - started < 2.0
        started = time.monotonic()
        with pytest.raises(errors.DeadlineExceeded):
            client.chat("Write a very long story.", model=MODEL, max_tokens=400, timeout=0.5)
        assert time.monotonic() - started < 2.0


def test_unreachable_node_is_a_connection_error(tmp_path: Path) -> None:
    from node.ports import free_port

    client = swarm.Client(f"http://127.0.0.1:{free_port()}", max_retries=1, timeout=5)
    with client, pytest.raises(errors.ConnectionFailed):
        client.health()


# ---- keys and the bounded queue


def test_api_key_is_required_when_set(locked_node: NodeProcess) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    missing = httpx.post(f"{locked_node.url}/v1/chat/completions", json=body)
    wrong = httpx.post(
        f"{locked_node.url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer nope"}
    )
    right = httpx.post(
        f"{locked_node.url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer s3cret"}
    )
    assert missing.status_code == wrong.status_code == 401
    assert _error(wrong)["code"] == "invalid_api_key"
    assert right.status_code == 200
    assert httpx.get(f"{locked_node.url}/health").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{locked_node.url}/v1", api_key="nope").models.list()


def test_full_queue_answers_429_with_retry_after(locked_node: NodeProcess) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Write a long story."}],
        "max_tokens": 120,
    }
    headers = {"Authorization": "Bearer s3cret"}
    responses: list[httpx.Response] = []

    def send() -> None:
        responses.append(
            httpx.post(f"{locked_node.url}/v1/chat/completions", json=body, headers=headers, timeout=60)
        )

    threads = [threading.Thread(target=send) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in responses)
    # One generating, one waiting: the other three are turned away at once.
    assert statuses.count(200) >= 2, statuses
    refused = [r for r in responses if r.status_code == 429]
    assert refused, statuses
    assert int(refused[0].headers["retry-after"]) >= 1
    assert _error(refused[0])["code"] == "queue_full"
    assert set(statuses) <= {200, 429}


def test_a_second_node_on_the_same_data_dir_is_refused(node: NodeProcess) -> None:
    from testnet.process import NodeStartFailed

    with pytest.raises(NodeStartFailed) as refused:
        NodeProcess(node.data_dir, "--model", MODEL).start(timeout=60)
    assert f"data dir {node.data_dir} is in use by pid" in str(refused.value)
    assert httpx.get(f"{node.url}/health").status_code == 200


def test_an_unknown_model_stops_the_start_with_one_clear_line(tmp_path: Path) -> None:
    from testnet.process import NodeStartFailed

    with pytest.raises(NodeStartFailed) as refused:
        NodeProcess(tmp_path / "data", "--model", "gpt-17").start(timeout=60)
    assert "error: unknown model 'gpt-17': use one of smollm2-135m-instruct" in str(refused.value)


# ---- the model `swarm`: routing on one node


def test_the_model_swarm_routes_to_an_expert_and_says_why(node: NodeProcess) -> None:
    with swarm.Client(node.url) as client:
        answer = client.chat(QUESTION, model="swarm", max_tokens=24, temperature=0, swarm=ROUTE)
        chunks = list(client.stream_chat(QUESTION, model="swarm", max_tokens=24, temperature=0, swarm=ROUTE))
    assert answer.swarm is not None
    assert answer.model == answer.swarm.model == MODEL
    assert answer.swarm.chosen == (MODEL,)
    assert [(e.model, e.reason) for e in answer.swarm.experts] == [(MODEL, "chosen")]
    assert "4" in answer.text
    # A routed stream says who answers in its first chunk, and only there.
    assert chunks[0].swarm is not None and chunks[0].swarm.model == MODEL
    assert all(c.swarm is None for c in chunks[1:])
    assert "".join(c.text for c in chunks) == answer.text


def test_a_round_with_a_single_expert_degrades_and_says_so(node: NodeProcess) -> None:
    with swarm.Client(node.url) as client:
        answer = client.chat(QUESTION, model="swarm", max_tokens=24, temperature=0)  # consensus, the default
    report = answer.swarm
    assert isinstance(report, swarm.RoundReport) and report.mode == "consensus"
    assert report.degraded == "only one answer: returned without judging"
    assert [c.model for c in report.candidates] == [MODEL]
    assert answer.text == report.candidates[0].answer and "4" in answer.text


def test_swarm_options_are_checked(node: NodeProcess) -> None:
    def post(body: dict) -> dict:
        messages = [{"role": "user", "content": QUESTION}]
        response = httpx.post(f"{node.url}/v1/chat/completions", json={"messages": messages, **body})
        assert response.status_code == 400, response.text
        return _error(response)

    assert post({"model": MODEL, "swarm": {"experts": 2}})["param"] == "swarm"
    assert post({"model": "swarm", "swarm": {"mode": "duel"}})["param"] == "swarm.mode"
    assert post({"model": "swarm", "swarm": {"experts": 0}})["param"] == "swarm.experts"
    assert post({"model": "swarm", "swarm": {"max_cost": -1}})["param"] == "swarm.max_cost"
    assert post({"model": "swarm", "swarm": {"budget": 3}})["param"] == "swarm.budget"
    nobody = post({"model": "swarm", "swarm": {"mode": "route", "max_latency_s": 0.001}})
    assert nobody["code"] == "budget_unsatisfiable"
    assert f"{MODEL}: over latency budget" in nobody["message"]


def _table(created_at: float, seed: int) -> ClusterTable:
    centroids = np.random.default_rng(seed).normal(size=(2, 384))
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return ClusterTable(
        (MODEL, "elsewhere"), centroids, [[3, 1], [0, 2]], [[4, 4], [4, 4]], created_at=created_at
    )


def test_a_routing_table_is_checked_installed_kept_and_used(node: NodeProcess) -> None:
    url = f"{node.url}/v1/routing/table"
    missing = httpx.get(url)
    assert missing.status_code == 404 and _error(missing)["code"] == "no_routing_table"
    garbage = httpx.put(url, content=b'{"format": 1}', headers=JSON_BODY)
    assert garbage.status_code == 400 and "centroids" in _error(garbage)["message"]
    table = _table(created_at=time.time(), seed=1)
    tampered = table.to_json().replace('"correct": [[3, 1]', '"correct": [[4, 1]')
    assert httpx.put(url, content=tampered.encode(), headers=JSON_BODY).status_code == 400
    assert httpx.get(url).status_code == 404  # nothing was taken from the bad ones

    with swarm.Client(node.url) as client:
        installed = client.install_routing_table(json.loads(table.to_json()))
        older = client.install_routing_table(json.loads(_table(created_at=1.0, seed=2).to_json()))
        summary = client.routing_table()
        answer = client.chat(QUESTION, model="swarm", max_tokens=8, temperature=0, swarm=ROUTE)
    assert installed["adopted"] and not older["adopted"]
    assert summary["version"] == table.version == older["current"]["version"]
    assert summary["models"][MODEL] == {"accuracy": 3 / 8, "questions": 8}
    assert json.loads((node.data_dir / "routing" / "table.json").read_text())["version"] == table.version
    assert answer.swarm is not None and answer.swarm.table_version == table.version
    assert answer.swarm.raw["basis"] == "clusters"
