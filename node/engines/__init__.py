"""Model backends. Each is imported only when chosen: torch and vLLM are heavy and optional."""

from __future__ import annotations

import os
from pathlib import Path

from node.config import ModelConfig

from .. import catalog
from .base import Engine, EngineError

IN_PROCESS_CONTEXT = 2048  # tokens per request when the operator doesn't say
VLLM_PARALLEL = 16  # vLLM batches continuously: let it see many requests at once


def load_engine(config: ModelConfig, cache_dir: Path | None, log_dir: Path) -> Engine:
    """Build the engine an operator asked for; blocks while the model loads."""
    if config.backend == "openai":
        from .openai_http import OpenAIEngine

        assert config.url is not None
        return OpenAIEngine(
            config.name or config.model,
            config.url,
            remote_model=config.remote_model or config.model,
            api_key=os.environ.get(config.api_key_env) if config.api_key_env else None,
            context_length=config.context_length,
            parallel=config.parallel or 1,
        )
    if config.backend == "vllm":
        from .vllm import VllmEngine

        # vLLM takes hub ids and folders itself; only our catalog names need resolving.
        source = (
            str(catalog.resolve(config.model, cache_dir).path)
            if config.model in catalog.CATALOG
            else config.model
        )
        return VllmEngine(
            config.name or config.model,
            source,
            context_length=config.context_length,
            command=list(config.command) if config.command else None,
            extra_args=list(config.extra_args),
            log_dir=log_dir,
            parallel=config.parallel or VLLM_PARALLEL,
        )
    resolved = catalog.resolve(config.model, cache_dir)
    name = config.name or resolved.name
    context_length = config.context_length or IN_PROCESS_CONTEXT
    backend = config.backend
    if backend == "auto":
        backend = "llamacpp" if resolved.format == "gguf" else "transformers"
    if backend == "llamacpp":
        if resolved.format != "gguf":
            raise EngineError(f"{resolved.path} is an HF folder; the llamacpp backend needs a .gguf file")
        from .llamacpp import LlamaCppEngine

        return LlamaCppEngine(
            name,
            str(resolved.path),
            chat=resolved.chat,
            context_length=context_length,
            threads=config.threads,
            parallel=config.parallel or 1,
        )
    from .transformers_engine import TransformersEngine

    return TransformersEngine(
        name,
        str(resolved.path),
        chat=resolved.chat,
        context_length=context_length,
        device=config.device,
        threads=config.threads,
    )
