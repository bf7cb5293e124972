"""The request journal over HTTP: GET /requests, DELETE /requests.

In memory, or with a state URL in one Redis stream for every worker
(`_redis_journal`): a request appears within a few ms of its end."""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint, Response
from quart_schema import document_querystring, document_response, tag

from .._openapi import document_empty_response
from .._responses import ScopeQuery, ValidationErrorDetail, json_response, parse_query
from .._state import server_state

blueprint = Blueprint("requests", __name__, url_prefix="/requests")


class JournalQuery(BaseModel, extra="forbid"):
    scope: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Only requests sent with this X-Fault-Scope header.",
    )
    limit: int | None = Field(
        None, ge=1, le=1_000_000, description="Only the newest this many requests."
    )


class JournalEntryView(BaseModel):
    at: float = Field(description="Arrival, Unix seconds on the server's clock.")
    method: str
    path: str
    query: str = Field(description="The raw query string.")
    request_id: str
    scope: str | None = Field(description="The request's X-Fault-Scope, if any.")
    status: int | None = Field(
        description=(
            "The status answered (499: the client left; null: no response, the "
            "connection was reset or closed by a fault rule)."
        )
    )
    outcome: str = Field(
        description=(
            "ok, timeout, shed, refused, client_closed, cancelled, error, or a "
            "fault's reset, closed, truncated."
        )
    )
    fault: str | None = Field(description="The id of the fault rule that matched.")
    duration_ms: float


class JournalView(BaseModel):
    requests: list[JournalEntryView] = Field(description="In order of arrival.")


@blueprint.get("")
@tag(["journal"])
@document_querystring(JournalQuery)
@document_response(JournalView, 200)
@document_response(ValidationErrorDetail, 422)
async def list_requests() -> Response:
    """Finished requests in the order they arrived (at most ``SERVER_JOURNAL_SIZE``
    are kept; ``limit``: the ones that finished last).

    With a state URL the journal holds every worker's requests; one answered by
    another worker appears within a few ms of its end.
    """
    query = parse_query(JournalQuery)
    if isinstance(query, Response):
        return query
    entries = await server_state().journal_store.entries(query.scope, query.limit)
    return json_response({"requests": [entry.to_json() for entry in entries]})


@blueprint.delete("")
@tag(["journal"])
@document_querystring(ScopeQuery)
@document_empty_response(204, description="The journal (or the scope's part) is empty.")
@document_response(ValidationErrorDetail, 422)
async def clear_requests() -> Response:
    """Forget the recorded requests, or only those of ``scope``."""
    query = parse_query(ScopeQuery)
    if isinstance(query, Response):
        return query
    await server_state().journal_store.clear(query.scope)
    return Response("", status=204)
