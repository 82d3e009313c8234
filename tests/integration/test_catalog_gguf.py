"""The catalog on a real model file: a GGUF path is read for its chat template."""

from __future__ import annotations

from pathlib import Path

from node import catalog


def test_a_gguf_path_is_served_with_its_chat_template(smollm2_path: Path) -> None:
    resolved = catalog.resolve(str(smollm2_path))
    assert resolved.format == "gguf" and resolved.chat
    assert resolved.path == smollm2_path.resolve()
