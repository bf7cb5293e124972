"""The echo routes, /anything and /headers, and the echo the other httpbin-style
routes share (/delay answers like /anything, /stream's lines carry its fields).

These routes follow go-httpbin where it speaks and say what they chose where it does
not, in the route docstrings (the OpenAPI descriptions). Two things differ from
httpbin on purpose, to keep this server's conventions: an invalid input is a 422
naming it (``{"detail": [{"loc", "msg", "type"}]}``), never a 400 or a 404; and a
request body is JSON (the guards answer 415 to any other POST, PUT or PATCH body,
413 to one over ``max_body_bytes``), so the echo parses a body declared JSON and
shows any other (a GET's or a DELETE's) as text only.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, JsonValue, TypeAdapter, ValidationError
from quart import Blueprint, Response, request
from quart.blueprints import BlueprintSetupState
from quart_schema import document_response, tag
from werkzeug.routing import PathConverter

from .._guards import is_json_media_type
from .._openapi import document_parameter
from .._responses import (
    ValidationErrorDetail,
    json_response,
    non_finite_numbers,
    validation_detail,
)

blueprint = Blueprint("echo", __name__)


class AnyPathConverter(PathConverter):
    """werkzeug's ``path``, but matching any text: also empty, with a line feed, a
    leading or a trailing slash, where ``path`` answers 404 or a redirect."""

    part_isolating = False
    regex = r"[\s\S]*?"


def _add_converter(state: BlueprintSetupState) -> None:
    state.app.url_map.converters.setdefault("anypath", AnyPathConverter)


# Recorded before the routes, so the converter exists when their rules are added.
blueprint.record_once(_add_converter)

ANY_METHOD = ["GET", "POST", "PUT", "PATCH", "DELETE"]
"""The methods the echoing routes take (HEAD and OPTIONS come with every route)."""
_JSON = TypeAdapter[JsonValue](JsonValue)


def invalid_path(error: ValidationError, name: str) -> Response:
    """The 422 for an invalid path parameter ``name``."""
    return json_response(validation_detail(error, "path", name).model_dump(), 422)


async def drain_body() -> None:
    """Read and drop the request body: a response sent before the body was read
    closes its connection (see `_connections`), this keeps it open."""
    await request.get_data(cache=False, as_text=False, parse_form_data=False)


def echo_headers() -> dict[str, str]:
    """The request headers as received, names in Title-Case, repeated ones joined."""
    received: dict[str, list[str]] = {}
    for name, value in request.scope["headers"]:
        received.setdefault(name.decode("latin-1").title(), []).append(
            value.decode("latin-1")
        )
    # RFC 9113 section 8.2.3: cookies are joined with "; ", all else with ", ".
    return {
        name: ("; " if name == "Cookie" else ", ").join(values)
        for name, values in received.items()
    }


def echo_args() -> dict[str, str | list[str]]:
    """The query arguments: a value as a string, a repeated one as a list."""
    return {
        name: values[0] if len(values) == 1 else values
        for name, values in request.args.lists()
    }


async def echo() -> dict[str, Any] | Response:
    """What /anything answers for this request, or the 422 for a body that claims
    to be JSON and is not (invalid, or holding NaN or an infinite number)."""
    raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
    parsed: JsonValue = None
    content_type = request.headers.get("Content-Type", "").encode("latin-1")
    if raw and is_json_media_type(content_type):
        try:
            parsed = _JSON.validate_json(raw)
        except ValidationError as error:
            return json_response(validation_detail(error, "body").model_dump(), 422)
        problems = [
            {
                "loc": ["body", *loc[1:]],
                "msg": "Input should be a finite number",
                "type": "finite_number",
            }
            for loc in non_finite_numbers([parsed])
        ]
        if problems:
            return json_response({"detail": problems}, 422)
    return {
        "method": request.method,
        "path": request.path,
        "args": echo_args(),
        "headers": echo_headers(),
        "json": parsed,
        "data": raw.decode("utf-8", errors="replace"),
    }


class Echo(BaseModel):
    """The request as the server received it."""

    method: str
    path: str
    args: dict[str, str | list[str]] = Field(
        description="Query arguments: a string, or a list for a repeated one."
    )
    headers: dict[str, str] = Field(
        description='Names in Title-Case; repeated headers joined with ", ".'
    )
    body_json: Any = Field(alias="json", description="The parsed JSON body, or null.")
    data: str = Field(description='The body as text ("" without one).')


class Headers(BaseModel):
    """The request headers as the server received them."""

    headers: dict[str, str] = Field(
        description='Names in Title-Case; repeated headers joined with ", ".'
    )


@blueprint.route("/anything", methods=ANY_METHOD)
@tag(["httpbin"])
@document_response(Echo, 200)
@document_response(ValidationErrorDetail, 422)
async def anything() -> Response:
    """Echo the request: method, path, args, headers, JSON body and raw body.

    Any of GET, POST, PUT, PATCH, DELETE (HEAD and OPTIONS as for every route).
    ``args``: a query argument given once is a string, repeated a list (httpbin's
    choice). ``headers``: as received, names in Title-Case, a repeated header joined
    with ``", "`` (``Cookie`` with ``"; "``). ``json``: the body parsed when it is
    declared JSON, else null; invalid JSON, NaN or an infinite number is a 422 at
    ``["body", ...]``. ``data``: the body as UTF-8 text (a byte that is not UTF-8
    becomes U+FFFD), ``""`` without one.
    """
    answer = await echo()
    return answer if isinstance(answer, Response) else json_response(answer)


@blueprint.route("/anything/<anypath:rest>", methods=ANY_METHOD)
@tag(["httpbin"])
@document_parameter(
    "path",
    "rest",
    schema={"type": "string"},
    description="Any text, slashes included (echoed in path).",
)
@document_response(Echo, 200)
@document_response(ValidationErrorDetail, 422)
async def anything_path(rest: str) -> Response:
    """Echo the request, as /anything does, under any path below /anything/.

    Every path matches, even ``/anything/`` and paths with doubled slashes (no
    redirect to a merged path).
    """
    answer = await echo()
    return answer if isinstance(answer, Response) else json_response(answer)


@blueprint.get("/headers")
@tag(["httpbin"])
@document_response(Headers, 200)
async def headers() -> Response:
    """The request headers, as /anything echoes them."""
    return json_response({"headers": echo_headers()})
