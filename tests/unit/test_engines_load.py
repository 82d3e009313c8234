"""load_engine builds the engine's spec from the operator's model config: names, context and parallelism
reach the engine, and what the operator left out is the backend's default."""

from __future__ import annotations

from pathlib import Path

from node.config import ModelConfig
from node.engines import load_engine
from node.engines.base import DEFAULT_CONTEXT_LENGTH
from node.ports import free_port


def test_an_openai_engine_gets_the_operators_names_context_and_parallelism(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: the engine is built without a server
    config = ModelConfig(
        "qwen",
        backend="openai",
        name="coder",
        url=url,
        remote_model="qwen-7b",
        context_length=512,
        parallel=3,
    )
    engine = load_engine(config, None, tmp_path)
    info = engine.info
    assert (info.name, info.source, info.context_length, info.chat, info.parallel) == (
        "coder",
        url,
        512,
        True,
        3,
    )
    assert info.extra == {"remote_model": "qwen-7b"}
    engine.close()


def test_what_the_operator_leaves_out_is_the_backends_default(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    engine = load_engine(ModelConfig("qwen", backend="openai", url=url), None, tmp_path)
    info = engine.info
    assert (info.name, info.context_length, info.parallel) == ("qwen", DEFAULT_CONTEXT_LENGTH, 1)
    assert info.extra == {"remote_model": "qwen"}
    engine.close()
