"""Error bodies shared by the route groups: ``{"detail": ...}`` everywhere.

JSON is strict both ways: a request body holding NaN or an infinite number (``NaN``,
``Infinity``, ``1e400``) is a 422, and no response ever holds one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from quart import Response, request

from ._asgi import EXCHANGE_KEY
from ._connections import Exchange

M = TypeVar("M", bound=BaseModel)

MAX_REQUEST_ID_LENGTH = 256
REQUEST_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_REQUEST_ID_LENGTH,
    "pattern": r"\S",
}
"""The OpenAPI schema of ``X-Request-ID``, as `request_id_problem` checks it."""


class ErrorDetail(BaseModel):
    detail: str = Field(description="Why the request failed.")


class ValidationErrorDetail(BaseModel):
    detail: list[dict[str, Any]] = Field(
        description='One {"loc", "msg", "type"} object per invalid input.'
    )


class ScopeQuery(BaseModel, extra="forbid"):
    """``?scope=``: only what belongs to one scope (the X-Fault-Scope header)."""

    scope: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Only this scope's (its X-Fault-Scope header).",
    )


def validation_detail(error: ValidationError, *prefix: str) -> ValidationErrorDetail:
    """pydantic errors as a 422 body, each ``loc`` starting with ``prefix``."""
    return ValidationErrorDetail(
        detail=[
            {
                "loc": [*prefix, *(str(part) for part in item["loc"])],
                "msg": item["msg"],
                "type": item["type"],
            }
            for item in error.errors(include_url=False)
        ]
    )


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A compact JSON response, built directly (no per-request schema wrappers).

    Strict JSON: a body holding NaN or Infinity raises `ValueError` (a bug, answered
    as a 500) rather than going out as something strict parsers refuse.
    """
    return Response(
        json.dumps(body, separators=(",", ":"), default=str, allow_nan=False),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def request_id_problem(request_id: str | None) -> Response | None:
    """A 400 for an ``X-Request-ID`` that is blank or too long; None if usable."""
    if request_id is None:
        return None
    if not request_id.strip():
        return json_response({"detail": "X-Request-ID must not be empty"}, 400)
    if len(request_id) > MAX_REQUEST_ID_LENGTH:
        reason = f"X-Request-ID must be at most {MAX_REQUEST_ID_LENGTH} characters"
        return json_response({"detail": reason}, 400)
    return None


async def parse_json_body(model: type[M]) -> M | Response:
    """The request body validated as ``model``, or the 422 that says why not.

    Numbers must be finite wherever they are, also in free-form fields (a job's
    payload): JSON has no NaN or Infinity, and ``1e400`` would become one.
    """
    try:
        parsed = model.model_validate_json(await request.get_data())
    except ValidationError as error:
        return json_response(validation_detail(error, "body").model_dump(), 422)
    problems = [
        {
            "loc": ["body", *loc],
            "msg": "Input should be a finite number",
            "type": "finite_number",
        }
        for loc in non_finite_numbers(parsed)
    ]
    if problems:
        return json_response(ValidationErrorDetail(detail=problems).model_dump(), 422)
    return parsed


def non_finite_numbers(value: Any) -> Iterator[list[str | int]]:
    """Where ``value`` (a model, or JSON-like dicts and lists) holds NaN or an
    infinite float: one location (keys and indexes) per number, in order."""
    yield from _non_finite(value, [])


def _non_finite(value: Any, path: list[str | int]) -> Iterator[list[str | int]]:
    items: Any
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        items = ((f.alias or name, getattr(value, name)) for name, f in fields.items())
    elif isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        if isinstance(item, float):
            if not math.isfinite(item):
                yield [*path, key]
        elif isinstance(item, BaseModel | dict | list | tuple):
            yield from _non_finite(item, [*path, key])


def parse_query(model: type[M]) -> M | Response:
    """The request's query string as ``model``, or the 422 that says why not."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as error:
        return json_response(validation_detail(error, "query").model_dump(), 422)


def state_unavailable_body(error: Exception) -> dict[str, str]:
    """The body of a 503 for a request whose shared state could not be reached."""
    return {"detail": f"State backend unavailable: {error}"}


REPLAYED_HEADER = "Idempotent-Replayed"


def mark_replayed(headers: dict[str, str]) -> None:
    """Say that this answer replays an earlier request's result: on ``headers``
    (``Idempotent-Replayed: true``) and on the request's exchange, for the
    metrics (``resilience_server_idempotent_replays_total``)."""
    headers[REPLAYED_HEADER] = "true"
    exchange = request.scope.get(EXCHANGE_KEY)
    if isinstance(exchange, Exchange):
        exchange.replayed = True
