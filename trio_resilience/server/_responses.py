"""Error bodies shared by the route groups: ``{"detail": ...}`` everywhere."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from quart import Response, request

M = TypeVar("M", bound=BaseModel)

MAX_REQUEST_ID_LENGTH = 256


class ErrorDetail(BaseModel):
    detail: str = Field(description="Why the request failed.")


class ValidationErrorDetail(BaseModel):
    detail: list[dict[str, Any]] = Field(
        description='One {"loc", "msg", "type"} object per invalid input.'
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
    """A compact JSON response, built directly (no per-request schema wrappers)."""
    return Response(
        json.dumps(body, separators=(",", ":"), default=str),
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
    """The request body validated as ``model``, or the 422 that says why not."""
    try:
        return model.model_validate_json(await request.get_data())
    except ValidationError as error:
        return json_response(validation_detail(error, "body").model_dump(), 422)
