"""swarm: the public face of the swarm-inference network (client SDK, CLI, config)."""

__version__ = "0.1.0"

from .client import AsyncClient, Client
from .errors import APIError, ConnectionFailed, DeadlineExceeded, SwarmError
from .types import Completion, CompletionChunk, ExpertReport, Health, ModelCard, RouteReport, SwarmOptions

__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "Completion",
    "CompletionChunk",
    "ConnectionFailed",
    "DeadlineExceeded",
    "ExpertReport",
    "Health",
    "ModelCard",
    "RouteReport",
    "SwarmError",
    "SwarmOptions",
    "__version__",
]
