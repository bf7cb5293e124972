"""GET /health: liveness and uptime."""

from __future__ import annotations

import trio
from pydantic import BaseModel, Field
from quart import Blueprint
from quart_schema import tag, validate_response

from .._state import server_state

blueprint = Blueprint("health", __name__)


class Health(BaseModel):
    status: str = Field(description='Always "ok" while the server answers.')
    uptime_seconds: float = Field(description="Seconds since the server started.")


@blueprint.get("/health")
@tag(["health"])
@validate_response(Health, 200)
async def health() -> Health:
    """The server is up; never held back by the concurrency limit."""
    uptime = trio.current_time() - server_state().started_at
    return Health(status="ok", uptime_seconds=uptime)
