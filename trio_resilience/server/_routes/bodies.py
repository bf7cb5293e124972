"""httpbin-style routes that take their time or answer other than JSON: /delay,
/bytes, /stream and /drip.

/stream and /drip send their bodies a chunk at a time, from an async generator that
Quart iterates after the status and headers have gone out. Quart-Trio watches the
connection meanwhile and cancels the route when the client disconnects, so a client
that gives up mid-body ends the route (the journal records ``client_closed``); the
generators only sleep with Trio and send, so the cancellation lands at once.

``request_timeout`` covers the whole exchange, body included: a route still
sleeping before its response gets the usual 504, a body still streaming is cut
short (outcome ``timeout``; the client sees the connection end early).
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

import trio
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_response, tag

from .._drip import drip_body
from .._openapi import (
    Schema,
    document_content_response,
    document_empty_response,
    document_parameter,
)
from .._responses import ErrorDetail, ValidationErrorDetail, json_response, parse_query
from .echo import ANY_METHOD, Echo, echo, echo_args, echo_headers, invalid_path
from .httpbin import MAX_SEED

blueprint = Blueprint("bodies", __name__)
F = TypeVar("F", bound=Callable[..., Any])

MAX_SECONDS = 60.0
MAX_BYTES = 1_048_576
MAX_STREAM_LINES = 1000
OCTETS = "application/octet-stream"
NDJSON = "application/x-ndjson"

_SECONDS = TypeAdapter[float](
    Annotated[float, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)]
)
_BYTES = TypeAdapter[int](Annotated[int, Field(ge=0, le=MAX_BYTES)])
_LINES = TypeAdapter[int](Annotated[int, Field(ge=1, le=MAX_STREAM_LINES)])


async def _nothing() -> AsyncIterator[bytes]:
    """An empty streamed body: what HEAD sends instead of a stream or a drip."""
    return
    yield  # an async generator, never reached


@blueprint.route("/delay/<seconds>", methods=ANY_METHOD)
@tag(["httpbin"])
@document_parameter(
    "path",
    "seconds",
    schema=_SECONDS,
    description=f"Seconds to wait (0 to {MAX_SECONDS:.0f}, may be fractional).",
)
@document_response(Echo, 200)
@document_response(ValidationErrorDetail, 422)
async def delay(seconds: str) -> Response:
    """Wait ``seconds``, then answer as /anything does; with any method.

    The body is read and checked first (an invalid JSON body is a 422 at once).
    The server's ``request_timeout`` (30 s by default) still applies, counted from
    the request's arrival: a delay that reaches it ends in 504 then.
    """
    try:
        wait = _SECONDS.validate_strings(seconds)
    except ValidationError as error:
        return invalid_path(error, "seconds")
    answer = await echo()
    if isinstance(answer, Response):
        return answer
    await trio.sleep(wait)
    return json_response(answer)


class SeedQuery(BaseModel, extra="forbid"):
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Seeds the bytes: one seed, one body."
    )


@blueprint.get("/bytes/<n>")
@tag(["httpbin"])
@document_parameter(
    "path", "n", schema=_BYTES, description=f"How many bytes (0 to {MAX_BYTES:,})."
)
@document_querystring(SeedQuery)
@document_content_response(
    200,
    description="n random bytes (none for n = 0: then no Content-Type either).",
    content={OCTETS: None},
)
@document_response(ValidationErrorDetail, 422)
async def random_bytes(n: str) -> Response:
    """``n`` random bytes, ``application/octet-stream``, with ``Content-Length``.

    With ``seed`` they are ``random.Random(seed).randbytes(n)``, the same for one
    seed and ``n``. They come from a fast generator, not a secure one. ``n = 0``
    is an empty body and, as every response without content here, has no
    ``Content-Type``. HEAD answers the headers only.
    """
    try:
        count = _BYTES.validate_strings(n)
    except ValidationError as error:
        return invalid_path(error, "n")
    query = parse_query(SeedQuery)
    if isinstance(query, Response):
        return query
    rng = random if query.seed is None else random.Random(query.seed)
    return Response(rng.randbytes(count), content_type=OCTETS)


@blueprint.get("/stream/<n>")
@tag(["httpbin"])
@document_parameter(
    "path",
    "n",
    schema=_LINES,
    description=f"How many lines (1 to {MAX_STREAM_LINES}).",
)
@document_content_response(
    200,
    description=(
        'n lines, each a JSON object: {"id": 0..n-1, "method", "path", "args", '
        '"headers"} as /anything has them.'
    ),
    content={NDJSON: None},
)
@document_response(ValidationErrorDetail, 422)
async def stream(n: str) -> Response:
    """``n`` newline-delimited JSON objects, each sent as its own chunk.

    A streamed response (no ``Content-Length``: chunked over HTTP/1.1), type
    ``application/x-ndjson``. Line ``i`` is ``{"id": i, "method", "path", "args",
    "headers"}`` with the fields /anything echoes (httpbin's /stream). The route
    ends when the client disconnects. HEAD answers the headers only.
    """
    try:
        lines = _LINES.validate_strings(n)
    except ValidationError as error:
        return invalid_path(error, "n")
    fields = {
        "method": request.method,
        "path": request.path,
        "args": echo_args(),
        "headers": echo_headers(),
    }

    async def body() -> AsyncIterator[bytes]:
        for i in range(lines):
            line = json.dumps({"id": i, **fields}, separators=(",", ":"))
            yield line.encode() + b"\n"

    chunks = _nothing() if request.method == "HEAD" else body()
    return Response(chunks, content_type=NDJSON)


class DripQuery(BaseModel, extra="forbid"):
    duration: float = Field(
        2,
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="Seconds over which the body is spread.",
    )
    numbytes: int = Field(10, ge=1, le=MAX_BYTES, description="Bytes in the body.")
    code: int = Field(200, ge=200, le=599, description="The response status.")
    delay: float = Field(
        0,
        ge=0,
        le=MAX_SECONDS,
        allow_inf_nan=False,
        description="Seconds to wait before the response starts.",
    )


def _chosen_or(status: int, model: type[BaseModel]) -> Callable[[F], F]:
    """Document ``status`` as either this route's JSON error or a chosen drip."""
    content: dict[str, Schema | None] = {
        "application/json": TypeAdapter(model),
        OCTETS: None,
    }
    return document_content_response(
        status,
        description=f"{status} was chosen (a drip), or the JSON error.",
        content=content,
    )


@blueprint.get("/drip")
@tag(["httpbin"])
@document_querystring(DripQuery)
@document_content_response(
    "2XX", description="The chosen code and its drip.", content={OCTETS: None}
)
@document_content_response(
    "3XX", description="The chosen code and its drip.", content={OCTETS: None}
)
@document_content_response(
    "4XX", description="The chosen code and its drip.", content={OCTETS: None}
)
@document_content_response(
    "5XX", description="The chosen code and its drip.", content={OCTETS: None}
)
@document_empty_response(204, description="204 was chosen: no body.")
@document_empty_response(304, description="304 was chosen: no body.")
@_chosen_or(400, ErrorDetail)
@_chosen_or(422, ValidationErrorDetail)
@_chosen_or(503, ErrorDetail)
@_chosen_or(504, ErrorDetail)
async def drip() -> Response:
    """After ``delay`` s, ``numbytes`` asterisks spread evenly over ``duration`` s.

    The status (``code``) and headers, with ``Content-Length: numbytes`` and
    ``application/octet-stream``, go out once ``delay`` has passed; then the body
    comes in equal slices at equal intervals, the last at ``duration``: one byte
    at a time, or, when there are more bytes than milliseconds in ``duration``,
    one slice per millisecond (duration 0: all at once). A chosen 204 or 304 has
    no body. The route ends when the client disconnects. ``request_timeout``
    still applies: a ``delay`` that reaches it is a 504, a drip still running then
    is cut short. HEAD answers the headers after ``delay``, without the drip.
    """
    query = parse_query(DripQuery)
    if isinstance(query, Response):
        return query
    await trio.sleep(query.delay)
    if query.code in (204, 304):
        return Response("", status=query.code)
    chunks = (
        _nothing()
        if request.method == "HEAD"
        else drip_body(b"*" * query.numbytes, query.duration)
    )
    return Response(
        chunks,
        status=query.code,
        headers={"Content-Length": str(query.numbytes)},
        content_type=OCTETS,
    )
