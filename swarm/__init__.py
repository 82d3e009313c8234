"""swarm: the public face of the swarm-inference network (client SDK, CLI, config)."""

__version__ = "0.1.0"

from .client import AsyncClient, Client
from .errors import APIError, ConnectionFailed, DeadlineExceeded, SwarmError
from .types import Completion, CompletionChunk, Health, ModelCard

__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "Completion",
    "CompletionChunk",
    "ConnectionFailed",
    "DeadlineExceeded",
    "Health",
    "ModelCard",
    "SwarmError",
    "__version__",
]
