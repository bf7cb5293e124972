"""The /fail routes: switch failure injection on and off, and report on it.

Like every other route group they answer through `json_response` and are
documented with quart-schema's ``document_*`` decorators; the path parameters are
parsed here (so a bad one is a 422 naming it, not a 404) and documented with the
same pydantic types that check them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from quart import Blueprint, Response
from quart_schema import document_response, tag

from .._faults import MAX_FAIL_COUNT, MAX_FAIL_SECONDS
from .._openapi import document_parameter
from .._responses import ValidationErrorDetail, json_response, validation_detail
from .._state import server_state

blueprint = Blueprint("fail", __name__, url_prefix="/fail")

_COUNT = TypeAdapter(Annotated[int, Field(ge=0, le=MAX_FAIL_COUNT)])
_SECONDS = TypeAdapter(
    Annotated[float, Field(ge=0, le=MAX_FAIL_SECONDS, allow_inf_nan=False)]
)


class FailureStatusModel(BaseModel):
    """Both failure modes' remaining budget, and totals since start."""

    count_remaining: int = Field(description="Requests still to fail in count mode.")
    duration_remaining_seconds: float = Field(
        description="Seconds left in duration mode."
    )
    failing: bool = Field(description="Whether the next request would fail.")
    requests_seen: int = Field(description="GET /msg requests checked since start.")
    failures_injected: int = Field(description="Failures injected since start.")


async def _status() -> Response:
    status = await server_state().faults.status()
    return json_response(
        {
            "count_remaining": status.count_remaining,
            "duration_remaining_seconds": status.duration_remaining_seconds,
            "failing": status.failing,
            "requests_seen": status.requests_seen,
            "failures_injected": status.failures_injected,
        }
    )


def _invalid(error: ValidationError, name: str) -> Response:
    return json_response(validation_detail(error, "path", name).model_dump(), 422)


@blueprint.post("/count/<count>")
@tag(["faults"])
@document_parameter(
    "path",
    "count",
    schema=_COUNT,
    description=f"How many GET /msg requests to fail (0 to {MAX_FAIL_COUNT:,}).",
)
@document_response(FailureStatusModel, 200)
@document_response(ValidationErrorDetail, 422)
async def fail_count(count: str) -> Response:
    """Fail the next ``count`` GET /msg requests (0 to 1,000,000).

    Each failure is ``500 {"detail": "Induced server failure"}``; 0 turns count
    mode off.
    """
    try:
        n = _COUNT.validate_strings(count)
    except ValidationError as error:
        return _invalid(error, "count")
    await server_state().faults.fail_next(n)
    return await _status()


@blueprint.post("/duration/<seconds>")
@tag(["faults"])
@document_parameter(
    "path",
    "seconds",
    schema=_SECONDS,
    description=(
        f"How long to fail every GET /msg request, in seconds "
        f"(0 to {MAX_FAIL_SECONDS:,.0f}, may be fractional)."
    ),
)
@document_response(FailureStatusModel, 200)
@document_response(ValidationErrorDetail, 422)
async def fail_duration(seconds: str) -> Response:
    """Fail every GET /msg request for ``seconds`` (0 to 86,400, may be fractional).

    0 turns duration mode off.
    """
    try:
        value = _SECONDS.validate_strings(seconds)
    except ValidationError as error:
        return _invalid(error, "seconds")
    await server_state().faults.fail_for(value)
    return await _status()


@blueprint.post("/reset")
@tag(["faults"])
@document_response(FailureStatusModel, 200)
async def fail_reset() -> Response:
    """Turn both failure modes off (the totals are kept)."""
    await server_state().faults.reset()
    return await _status()


@blueprint.get("/status")
@tag(["faults"])
@document_response(FailureStatusModel, 200)
async def fail_status() -> Response:
    """Both modes' remaining budget, and totals since start."""
    return await _status()
