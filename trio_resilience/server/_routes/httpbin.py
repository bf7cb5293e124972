"""httpbin-style status routes: /status (a chosen status) and /redirect (a chain).

They follow go-httpbin where it speaks and say what they chose where it does not, in
the route docstrings (the OpenAPI descriptions); like every route here, an invalid
input is a 422 naming it, never a 400 or a 404. A chosen status comes with the
headers its definition requires (``Location``, ``WWW-Authenticate``, ...), so that
a client meets it as it would from a real server.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import attrs
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from quart import Blueprint, Response, request
from quart_schema import document_querystring, document_response, tag

from .._openapi import (
    document_content_response,
    document_empty_response,
    document_parameter,
    document_response_header,
)
from .._responses import ErrorDetail, ValidationErrorDetail, json_response, parse_query
from .echo import ANY_METHOD, Echo, drain_body, echo, invalid_path

blueprint = Blueprint("httpbin", __name__)
F = TypeVar("F", bound=Callable[..., Any])

MAX_STATUS_CHOICES = 20
MAX_STATUS_WEIGHT = 1000
MAX_SEED = 2**63 - 1
MAX_REDIRECTS = 100
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
_RANDOM = random.Random()


class StatusBody(BaseModel):
    """The status chosen (2xx and 3xx but 204 and 304)."""

    status: int


class StatusProblem(BaseModel):
    """An invalid ``codes`` or query (a list of problems), or the chosen 422."""

    detail: str | list[dict[str, Any]]


@attrs.frozen
class StatusChoices:
    """A parsed ``codes`` spec: each status with its weight."""

    codes: tuple[int, ...]
    weights: tuple[int, ...]

    def choose(self, rng: random.Random) -> int:
        return rng.choices(self.codes, self.weights)[0]


def _number(text: str, what: str, low: int, high: int) -> int:
    if not (text.isascii() and text.isdigit()) or text.startswith("0"):
        raise ValueError(f"{what} {text!r} is not a number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is not from {low} to {high}")
    return value


def parse_status_choices(spec: Any) -> StatusChoices:
    """A ``codes`` spec parsed; the `ValueError` says what is wrong with it (the
    422's ``msg``)."""
    entries = str(spec).split(",")
    if len(entries) > MAX_STATUS_CHOICES:
        raise ValueError(f"at most {MAX_STATUS_CHOICES} codes, got {len(entries)}")
    codes, weights = [], []
    for entry in entries:
        if not entry:
            raise ValueError("an entry is empty: separate codes with single commas")
        code, colon, weight = entry.partition(":")
        codes.append(_number(code, "status", 200, 599))
        weights.append(_number(weight, "weight", 1, MAX_STATUS_WEIGHT) if colon else 1)
    return StatusChoices(tuple(codes), tuple(weights))


_ENTRY = r"[2-5][0-9]{2}(:(1000|[1-9][0-9]{0,2}))?"
_CODES = TypeAdapter[StatusChoices](
    Annotated[
        StatusChoices,
        PlainValidator(parse_status_choices),
        WithJsonSchema(
            {
                "type": "string",
                "pattern": f"^{_ENTRY}(,{_ENTRY}){{0,{MAX_STATUS_CHOICES - 1}}}$",
                "examples": ["503", "500,502,503", "503:3,200:1"],
            }
        ),
    ]
)


class StatusQuery(BaseModel, extra="forbid"):
    seed: int | None = Field(
        None,
        ge=0,
        le=MAX_SEED,
        description="Seeds this request's choice: the same seed, the same code.",
    )
    retry_after: int | None = Field(
        None, ge=0, le=86_400, description="Seconds to send as Retry-After."
    )


def reason(code: int) -> str:
    """The reason phrase of ``code``; an unregistered code takes that of its class's
    x00 code (RFC 9110 section 15: a client treats it so)."""
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return HTTPStatus(code // 100 * 100).phrase


_RETRY_AFTER_SCHEMA = {"type": "integer", "minimum": 0}
_RETRY_AFTER_TEXT = "With retry_after: that many seconds."
_RETRY_AFTER = {
    "Retry-After": {"description": _RETRY_AFTER_TEXT, "schema": _RETRY_AFTER_SCHEMA}
}
_LOCATION = {
    "Location": {"description": "Always /anything.", "schema": {"type": "string"}}
}


def _json(schema: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": TypeAdapter(schema)}


def _retry_after(status: int) -> Callable[[F], F]:
    return document_response_header(
        status, "Retry-After", schema=_RETRY_AFTER_SCHEMA, description=_RETRY_AFTER_TEXT
    )


@blueprint.route("/status/<codes>", methods=ANY_METHOD)
@tag(["httpbin"])
@document_parameter(
    "path",
    "codes",
    schema=_CODES,
    description=(
        "One status (503), a comma list to pick from uniformly (500,502,503) or "
        f"weighted (503:3,200:1); codes 200 to 599, at most {MAX_STATUS_CHOICES} "
        f"entries, weights 1 to {MAX_STATUS_WEIGHT} (1 when left out)."
    ),
)
@document_querystring(StatusQuery)
@document_content_response(
    "2XX",
    description="The chosen 2xx.",
    content=_json(StatusBody),
    headers=_RETRY_AFTER,
)
@document_content_response(
    "3XX",
    description="The chosen 3xx.",
    content=_json(StatusBody),
    headers={**_LOCATION, **_RETRY_AFTER},
)
@document_content_response(
    "4XX",
    description="The chosen 4xx.",
    content=_json(ErrorDetail),
    headers=_RETRY_AFTER,
)
@document_content_response(
    "5XX",
    description="The chosen 5xx.",
    content=_json(ErrorDetail),
    headers=_RETRY_AFTER,
)
@document_empty_response(204, description="204 was chosen.")
@document_empty_response(304, description="304 was chosen.")
@document_response(ErrorDetail, 401)
@document_response(ErrorDetail, 405)
@document_response(ErrorDetail, 407)
@document_response(StatusProblem, 422)
@document_response_header(401, "WWW-Authenticate", description="A Bearer challenge.")
@document_response_header(405, "Allow", description="The methods /status allows.")
@document_response_header(407, "Proxy-Authenticate", description="A Bearer challenge.")
@_retry_after(204)
@_retry_after(304)
@_retry_after(401)
@_retry_after(405)
@_retry_after(407)
@_retry_after(422)
async def status(codes: str) -> Response:
    """Answer a status chosen from ``codes``, with any of GET, POST, PUT, PATCH, DELETE.

    The choice is uniform over a comma list, weighted with ``code:weight`` (a code
    may appear more than once: its weights add up). With ``seed`` the choice is
    ``random.Random(seed)``'s, so one seed always gives one code; without, it is
    random. Bodies: none for 204 and 304; ``{"detail": "<reason phrase>"}`` for
    4xx and 5xx (an unregistered code uses its class's x00 phrase, as RFC 9110 says
    a client should read it); ``{"status": code}`` otherwise. Headers a status
    requires come with it: ``Location: /anything`` on every 3xx but 304,
    ``WWW-Authenticate`` on 401, ``Proxy-Authenticate`` on 407 (Bearer challenges),
    ``Allow`` on 405; ``retry_after`` adds ``Retry-After`` to any status. A request
    body (JSON, as everywhere) is read and ignored, so the connection stays open.
    An invalid ``codes`` or query is a 422 whose ``detail`` is a list (the chosen
    422's is a string).
    """
    await drain_body()
    try:
        choices = _CODES.validate_python(codes)
    except ValidationError as error:
        return invalid_path(error, "codes")
    query = parse_query(StatusQuery)
    if isinstance(query, Response):
        return query
    rng = _RANDOM if query.seed is None else random.Random(query.seed)
    code = choices.choose(rng)
    headers = (
        {} if query.retry_after is None else {"Retry-After": str(query.retry_after)}
    )
    if 300 <= code < 400 and code != 304:
        headers["Location"] = "/anything"
    if code == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="trio_resilience"'
    elif code == 407:
        headers["Proxy-Authenticate"] = 'Bearer realm="trio_resilience"'
    elif code == 405:
        headers["Allow"] = ", ".join([*ANY_METHOD, "HEAD", "OPTIONS"])
    if code in (204, 304):
        return Response("", status=code, headers=headers)
    body = {"detail": reason(code)} if code >= 400 else {"status": code}
    return json_response(body, code, headers)


def _redirect_status(value: int) -> int:
    if value not in REDIRECT_STATUSES:
        raise ValueError(
            f"status must be one of {', '.join(map(str, REDIRECT_STATUSES))}"
        )
    return value


class RedirectQuery(BaseModel, extra="forbid"):
    absolute: bool = Field(
        False, description="Absolute Location URLs, from the request's Host."
    )
    status: Annotated[
        int,
        AfterValidator(_redirect_status),
        WithJsonSchema({"type": "integer", "enum": list(REDIRECT_STATUSES)}),
    ] = Field(302, description="The redirect status of every hop.")


_HOPS = TypeAdapter[int](Annotated[int, Field(ge=0, le=MAX_REDIRECTS)])


def _redirect_docs(func: F) -> F:
    for code in REDIRECT_STATUSES:
        func = document_response_header(
            code,
            "Location",
            description="The next hop: /redirect/{n-1}, or /anything after the last.",
        )(func)
        func = document_empty_response(code, description=f"{reason(code)}.")(func)
    return func


@blueprint.route("/redirect/<n>", methods=ANY_METHOD)
@tag(["httpbin"])
@document_parameter(
    "path",
    "n",
    schema=_HOPS,
    description=(
        f"Redirects left before /anything (0 to {MAX_REDIRECTS}; 0: none, the "
        "answer is /anything's)."
    ),
)
@document_querystring(RedirectQuery)
@_redirect_docs
@document_response(Echo, 200)
@document_response(ValidationErrorDetail, 422)
async def redirect(n: str) -> Response:
    """Redirect ``n`` times, then to /anything; with any method.

    ``/redirect/{n}`` answers 302 (or ``status``) with ``Location:
    /redirect/{n-1}``, ``/redirect/1`` with ``Location: /anything``, and no body;
    ``/redirect/0`` (a chain of none) answers as /anything does.
    Every method is accepted so that 307 and 308, which keep the method and body,
    can be followed to /anything. The query options given are kept on each hop (not
    on /anything), so a chain stays absolute or keeps its status. With
    ``absolute=true`` the URLs are absolute, built from the request's scheme and
    ``Host``.
    """
    try:
        hops = _HOPS.validate_strings(n)
    except ValidationError as error:
        return invalid_path(error, "n")
    query = parse_query(RedirectQuery)
    if isinstance(query, Response):
        return query
    if hops == 0:
        answer = await echo()
        return answer if isinstance(answer, Response) else json_response(answer)
    await drain_body()
    if hops == 1:
        location = "/anything"
    else:
        options = urlencode(sorted(request.args.items()))
        location = f"/redirect/{hops - 1}" + (f"?{options}" if options else "")
    if query.absolute:
        location = request.host_url.rstrip("/") + location
    return Response("", status=query.status, headers={"Location": location})
