"""swarm: the public face of the swarm-inference network (client SDK, CLI, config)."""

__version__ = "0.1.0"

from .client import AsyncClient, Client
from .errors import APIError, ConnectionFailed, DeadlineExceeded, SwarmError
from .types import (
    CandidateReport,
    Completion,
    CompletionChunk,
    ExpertReport,
    Health,
    ModelCard,
    RoundReport,
    RouteReport,
    SwarmOptions,
    VoteReport,
)

__all__ = [
    "APIError",
    "AsyncClient",
    "CandidateReport",
    "Client",
    "Completion",
    "CompletionChunk",
    "ConnectionFailed",
    "DeadlineExceeded",
    "ExpertReport",
    "Health",
    "ModelCard",
    "RoundReport",
    "RouteReport",
    "SwarmError",
    "SwarmOptions",
    "VoteReport",
    "__version__",
]
