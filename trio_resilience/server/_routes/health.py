"""GET /health: liveness and uptime."""

from __future__ import annotations

from typing import Literal

import trio
from pydantic import BaseModel, Field
from quart import Blueprint, Response
from quart_schema import document_response, tag

from .._responses import json_response
from .._state import server_state

blueprint = Blueprint("health", __name__)


class Health(BaseModel):
    """The server is up."""

    status: Literal["ok"] = Field(description='Always "ok" while the server answers.')
    uptime_seconds: float = Field(description="Seconds since the server started.")


@blueprint.get("/health")
@tag(["health"])
@document_response(Health, 200)
async def health() -> Response:
    """The server is up; never held back by the concurrency limit."""
    uptime = trio.current_time() - server_state().started_at
    return json_response({"status": "ok", "uptime_seconds": uptime})
