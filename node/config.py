"""Node configuration: a TOML file, overridden by command-line flags.

host = "127.0.0.1"          # loopback unless the operator opens it
port = 8420
data_dir = "~/.swarm/node"
api_keys = ["..."]          # optional bearer keys for /v1
max_waiting = 64            # per-model wait line; past it: 429
p2p_port = 8421             # libp2p (Noise-encrypted), on p2p_host = "127.0.0.1" by default
bootstrap = ["/ip4/192.0.2.7/tcp/8421/p2p/12D3KooW..."]   # peers to join through
relay = false               # serve Circuit Relay v2 to peers behind NAT (a public node)
public_addrs = ["/ip4/203.0.113.5/tcp/8421"]   # where peers reach us, if the OS doesn't know (port forward)
serve_peers = "say"         # whose requests the models serve over libp2p: say | allow-list | any
serve_allow = ["12D3KooW..."]   # the peers allow-list serves (and serve_allow_file, one id a line)
peer_requests_per_minute = 60   # per peer, and peer_tokens_per_minute, peer_concurrency

[[models]]
model = "smollm2-135m-instruct"   # catalog name, .gguf path, HF folder
backend = "auto"                  # auto | llamacpp | transformers | vllm | openai
context_length = 2048
parallel = 1
price_per_token = 0.0             # announced; requests can cap their cost with it

[[models]]                        # a server the operator already runs
name = "llama3"
backend = "openai"
url = "http://127.0.0.1:11434/v1"
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.wire import DEFAULT_PORT
from ranking.ballots import READINGS, Reading

BACKENDS = ("auto", "llamacpp", "transformers", "vllm", "openai")
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"  # the most coherent of the offline three
DEFAULT_P2P_PORT = 8421
# Whose requests the models serve over libp2p (node/admission.py): those with a say in the ledger (every
# peer in the network's bootstrap, or without a ledger), the operator's list, or anyone.
SERVE_POLICIES = ("say", "allow-list", "any")


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ModelConfig:
    model: str
    backend: str = "auto"
    name: str | None = None  # the name clients use; defaults to the model's own
    context_length: int | None = None  # None: 2048 in-process, or what the server reports
    parallel: int | None = None  # requests generated at once; None: 1 in-process, 16 for vllm
    threads: int | None = None
    device: str | None = None  # transformers: "cpu", "cuda", ...
    url: str | None = None  # openai: the server's base URL
    remote_model: str | None = None  # openai: the model name on that server
    api_key_env: str | None = None  # openai: environment variable holding its key
    command: tuple[str, ...] | None = None  # vllm: replaces `vllm serve ...`
    extra_args: tuple[str, ...] = ()  # vllm: appended to the command
    price_per_token: float = 0.0  # announced to peers; callers cap what a request may cost with it

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"unknown backend {self.backend!r}: use one of {', '.join(BACKENDS)}")
        if self.backend == "openai" and not self.url:
            raise ConfigError(f'model {self.model!r}: the openai backend needs url = "http://host:port/v1"')
        if self.context_length is not None and self.context_length < 16:
            raise ConfigError(f"model {self.model!r}: context_length must be at least 16")
        if self.parallel is not None and self.parallel < 1:
            raise ConfigError(f"model {self.model!r}: parallel must be at least 1")
        if not self.price_per_token >= 0:
            raise ConfigError(f"model {self.model!r}: price_per_token can't be negative")


def default_data_dir() -> Path:
    return Path(os.environ.get("SWARM_HOME", Path.home() / ".swarm")) / "node"


@dataclass(frozen=True)
class NodeConfig:
    models: tuple[ModelConfig, ...] = (ModelConfig(DEFAULT_MODEL),)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=default_data_dir)
    cache_dir: Path | None = None
    api_keys: tuple[str, ...] = ()
    max_waiting: int = 64
    max_request_bytes: int = 4 << 20
    p2p_host: str = "127.0.0.1"  # libp2p listens on loopback too unless the operator opens it
    p2p_port: int = DEFAULT_P2P_PORT
    bootstrap: tuple[str, ...] = ()  # multiaddrs of peers to join through
    mdns: bool = False  # find peers on the LAN by multicast DNS
    relay: bool = False  # serve Circuit Relay v2 to peers behind NAT (a publicly reachable node)
    public_addrs: tuple[str, ...] = ()  # multiaddrs peers reach us at, not ones we listen on (a port forward)
    announce_interval: float = 5.0  # seconds between announcements; peers expire after three missed
    # Pick an acceleration method per request from the node's own history (accel/); off: engine defaults.
    accel: bool = True
    accel_exploration: float = 0.1  # share of requests run with a method the learner is less sure of
    accel_lossy: bool = False  # may methods that change greedy output be picked?
    # Keep the ledger and let reputation decide who has a say; off, every node is trusted alike.
    ledger: bool = True
    challenge_interval: float = 60.0  # seconds between proof-of-capability beats; 0: challenge nobody
    challenge_file: Path | None = None  # the operator's own challenge questions (JSON Lines)
    serve_peers: str = "say"  # one of SERVE_POLICIES
    serve_allow: tuple[str, ...] = ()  # peer ids allow-list serves
    serve_allow_file: Path | None = None  # more of them, one a line
    peer_requests_per_minute: int = 60
    peer_tokens_per_minute: int = 20_000  # counted as the most each request may generate
    peer_concurrency: int = 4  # a peer's requests running or queued here at once
    # How this node judges rounds: "text" parses what its model writes, "probability" reads its token
    # probabilities where the engine gives them (docs/rounds.md).
    judge_reading: Reading = "text"

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError("a node needs at least one model")
        names = [m.name or m.model for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"two models share a name: {names}; give one a different `name`")
        for key in ("port", "p2p_port"):
            if not 0 <= getattr(self, key) <= 65535:
                raise ConfigError(f"{key} {getattr(self, key)} is out of range")
        if self.announce_interval <= 0:
            raise ConfigError("announce_interval must be positive")
        if self.max_waiting < 0:
            raise ConfigError("max_waiting can't be negative")
        if not 0 <= self.accel_exploration <= 1:
            raise ConfigError("accel_exploration must lie between 0 and 1")
        if self.challenge_interval < 0:
            raise ConfigError("challenge_interval can't be negative")
        if self.serve_peers not in SERVE_POLICIES:
            raise ConfigError(f"serve_peers {self.serve_peers!r}: use one of {', '.join(SERVE_POLICIES)}")
        if self.judge_reading not in READINGS:
            raise ConfigError(f"judge_reading {self.judge_reading!r}: use one of {', '.join(READINGS)}")
        for key in ("peer_requests_per_minute", "peer_tokens_per_minute", "peer_concurrency"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1")

    def served_peers(self) -> frozenset[str]:
        """The peer ids allow-list serves: serve_allow and the lines of serve_allow_file."""
        listed = set(self.serve_allow)
        if self.serve_allow_file is not None:
            try:
                text = self.serve_allow_file.read_text()
            except OSError as exc:
                raise ConfigError(
                    f"can't read serve_allow_file {self.serve_allow_file}: {exc.strerror}"
                ) from None
            listed |= {
                line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
            }
        return frozenset(listed)


def _fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _check_keys(table: dict[str, Any], cls: type, where: str) -> None:
    unknown = set(table) - _fields(cls)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_fields(cls))}")


def model_from_table(table: dict[str, Any]) -> ModelConfig:
    _check_keys(table, ModelConfig, "[[models]]")
    values = dict(table)
    for key in ("command", "extra_args"):
        if values.get(key) is not None:
            values[key] = tuple(str(a) for a in values[key])
    try:
        return ModelConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"[[models]]: {exc}") from None


def load(path: Path | None, **overrides: Any) -> NodeConfig:
    """Read the TOML file (if any), then apply the flags the operator gave (None means not given)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            table = tomllib.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"can't read config file {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        _check_keys(table, NodeConfig, str(path))
        values.update(table)
        if "models" in values:
            values["models"] = tuple(model_from_table(t) for t in values["models"])
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("data_dir", "cache_dir", "challenge_file", "serve_allow_file"):
        if values.get(key) is not None:
            values[key] = Path(values[key]).expanduser()
    for key in ("api_keys", "bootstrap", "serve_allow", "public_addrs"):
        if key in values:
            values[key] = tuple(values[key])
    return NodeConfig(**values)
