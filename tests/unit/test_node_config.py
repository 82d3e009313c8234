from __future__ import annotations

from pathlib import Path

import pytest

from node import config
from node.config import ConfigError


def test_toml_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        'port = 9000\napi_keys = ["k"]\n[[models]]\nmodel = "gemma3-270m"\nparallel = 2\n'
        '[[models]]\nname = "remote"\nmodel = "llama3"\nbackend = "openai"\nurl = "http://127.0.0.1:1/v1"\n'
    )
    loaded = config.load(path, port=9001, host=None)
    assert loaded.port == 9001 and loaded.host == "127.0.0.1"
    assert loaded.api_keys == ("k",)
    assert [m.model for m in loaded.models] == ["gemma3-270m", "llama3"]
    assert loaded.models[0].parallel == 2 and loaded.models[1].backend == "openai"


def test_defaults_are_loopback_and_one_model() -> None:
    loaded = config.load(None)
    assert loaded.host == "127.0.0.1"
    assert [m.model for m in loaded.models] == [config.DEFAULT_MODEL]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 1\n", "unknown keys ['prot']"),
        ("[[models]]\nmodel = 'x'\nbackend = 'tpu'\n", "unknown backend 'tpu'"),
        ("[[models]]\nmodel = 'x'\nbackend = 'openai'\n", "needs url"),
        ("[[models]]\nmodel = 'x'\n[[models]]\nmodel = 'x'\n", "share a name"),
        ("port = [", "not valid TOML"),
    ],
)
def test_bad_config_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        config.load(path)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="can't read config file"):
        config.load(Path("/nonexistent/node.toml"))
