"""GET /msg: a fresh UUID, with delays, injected failures and idempotency.

This is the route load tests hammer, so it parses its one parameter and writes its
JSON directly instead of going through quart-schema's per-request validation
wrappers; the schema decorators below only document it in the OpenAPI document.
"""

from __future__ import annotations

import uuid

import trio
from pydantic import BaseModel, Field, ValidationError
from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_response, tag

from .._openapi import document_parameter, document_response_header
from .._responses import (
    REQUEST_ID_SCHEMA,
    ErrorDetail,
    ValidationErrorDetail,
    json_response,
    mark_replayed,
    request_id_problem,
    validation_detail,
)
from .._state import server_state

MAX_DELAY_MS = 30_000

blueprint = Blueprint("messages", __name__)


class MessageQuery(BaseModel):
    delay: int = Field(
        0,
        ge=0,
        le=MAX_DELAY_MS,
        description=(
            "Milliseconds to wait before answering. The whole request must end "
            "within the server's request_timeout (30 s by default), counted from "
            "its arrival: a delay at or beyond it, or so close below it that no "
            "time is left to answer, ends in 504 at request_timeout."
        ),
    )


class Message(BaseModel):
    """A message id: new, or the one cached for the request's X-Request-ID."""

    message_id: str = Field(
        description="A new UUID, or the one cached for the id.",
        json_schema_extra={"format": "uuid"},
    )


class InvalidRequestId(ErrorDetail):
    """X-Request-ID is blank or longer than 256 characters."""


class InducedFailure(ErrorDetail):
    """Induced server failure: failure injection is on (see /fail)."""


def _parse_query() -> MessageQuery | Response:
    args = {
        name: values[0] if len(values) == 1 else values
        for name, values in request.args.lists()
    }
    if not args:
        return MessageQuery()
    try:
        return MessageQuery.model_validate(args)
    except ValidationError as error:
        return json_response(validation_detail(error, "query").model_dump(), 422)


@blueprint.get("/msg")
@tag(["messages"])
@document_querystring(MessageQuery)
@document_parameter(
    "header",
    "X-Request-ID",
    schema=REQUEST_ID_SCHEMA,
    description=(
        "Idempotency key: every request with this id gets the answer of the "
        "first (blank or too long: 400)."
    ),
)
@document_response(Message, 200)
@document_response_header(
    200,
    "Idempotent-Replayed",
    schema={"const": "true"},
    description="Present on an answer replayed for a known X-Request-ID.",
)
@document_response(InvalidRequestId, 400)
@document_response(ValidationErrorDetail, 422)
@document_response(InducedFailure, 500)
async def get_message() -> Response:
    """A new message id after an optional delay.

    Processing order: an injected failure (``/fail`` or a fault rule, checked
    before the route: it wins over a bad query and over a cached answer), then the
    idempotency cache for ``X-Request-ID`` (concurrent duplicates share one
    answer, replays carry ``Idempotent-Replayed: true``), then the delay. The
    server's ``request_timeout`` (30 s by default) counts from the request's
    arrival, so a delay at or beyond it ends in 504 when it runs out: a way to
    test how a client handles a gateway timeout.
    """
    query = _parse_query()
    if isinstance(query, Response):
        return query
    request_id = request.headers.get("X-Request-ID")
    if (problem := request_id_problem(request_id)) is not None:
        return problem
    state = server_state()
    delay = query.delay / 1000

    async def new_message() -> str:
        await trio.sleep(delay)
        return str(uuid.uuid4())

    if request_id is None:
        return json_response({"message_id": await new_message()})
    message_id, replayed = await state.messages.get_or_create(request_id, new_message)
    headers: dict[str, str] = {}
    if replayed:
        mark_replayed(headers)
    return json_response({"message_id": message_id}, headers=headers)
