"""The API as one ASGI app: the routers, the error handlers, the guard, and a schema that is the wire."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema
from starlette.types import ASGIApp

from core import __version__

from . import admin, dashboard, openai, operations
from .errors import install_error_handlers
from .guard import Guard
from .state import NodeState

ROUTERS = (openai.router, admin.router, operations.router, dashboard.router)
SCHEMAS = "#/components/schemas/{model}"


def create_app(state: NodeState, *, bind: str = "127.0.0.1", max_request_bytes: int = 4 << 20) -> ASGIApp:
    """The API as an ASGI app, guarded (node.api.guard) for a node listening on `bind`."""
    app = FastAPI(
        title="swarm node",
        version=__version__,
        description="An OpenAI-compatible endpoint of one node of the swarm-inference network.",
    )
    app.state.node = state
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app, ROUTERS)
    app.openapi = lambda: _schema(app)  # type: ignore[method-assign]
    return Guard(app, state.api_keys, max_request_bytes, bind=bind)


def _schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, less what the node never answers, plus what its streams send."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            # FastAPI documents its 422 for every route with input; the node answers those 400 (errors.py).
            operation["responses"].pop("422", None)
        components = schema["components"]["schemas"]
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        _, events = models_json_schema(
            [(model, "serialization") for model in openai.STREAM_EVENTS], ref_template=SCHEMAS
        )
        components.update(events["$defs"])
        app.openapi_schema = schema
    return app.openapi_schema
