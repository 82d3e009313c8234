"""Model backends. Each is imported only when chosen: torch and vLLM are heavy and optional."""

from __future__ import annotations

import os
from pathlib import Path

from node.config import ModelConfig

from .. import catalog
from .base import Engine, EngineError, EngineSpec


def load_engine(
    config: ModelConfig, cache_dir: Path | None, log_dir: Path, on_progress: catalog.Progress | None = None
) -> Engine:
    """Build the engine an operator asked for; blocks while the model loads. `on_progress` follows the
    bytes of assembling and checking a catalogued model (catalog.resolve)."""

    def spec(name: str, source: str, *, chat: bool = True) -> EngineSpec:
        return EngineSpec(
            name, source, chat=chat, context_length=config.context_length, parallel=config.parallel
        )

    if config.backend == "openai":
        from .openai_http import OpenAIEngine

        assert config.url is not None
        return OpenAIEngine(
            spec(config.name or config.model, config.url),
            remote_model=config.remote_model or config.model,
            api_key=os.environ.get(config.api_key_env) if config.api_key_env else None,
        )
    if config.backend == "vllm":
        from .vllm import VllmEngine

        # vLLM takes hub ids and folders itself; only our catalog names need resolving.
        source = (
            str(catalog.resolve(config.model, cache_dir, on_progress).path)
            if config.model in catalog.CATALOG
            else config.model
        )
        return VllmEngine(
            spec(config.name or config.model, source),
            command=list(config.command) if config.command else None,
            extra_args=list(config.extra_args),
            log_dir=log_dir,
        )
    resolved = catalog.resolve(config.model, cache_dir, on_progress)
    in_process = spec(config.name or resolved.name, str(resolved.path), chat=resolved.chat)
    backend = config.backend
    if backend == "auto":
        backend = "llamacpp" if resolved.format == "gguf" else "transformers"
    if backend == "llamacpp":
        if resolved.format != "gguf":
            raise EngineError(f"{resolved.path} is an HF folder; the llamacpp backend needs a .gguf file")
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine(in_process, threads=config.threads)
    from .transformers_engine import TransformersEngine

    return TransformersEngine(in_process, device=config.device, threads=config.threads)
