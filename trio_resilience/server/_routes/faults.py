"""The /fail routes: switch failure injection on and off, and report on it."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from quart import Blueprint
from quart_schema import tag, validate_response

from .._faults import MAX_FAIL_COUNT, MAX_FAIL_SECONDS
from .._responses import ValidationErrorDetail, validation_detail
from .._state import server_state

blueprint = Blueprint("faults", __name__, url_prefix="/fail")

_COUNT = TypeAdapter(Annotated[int, Field(ge=0, le=MAX_FAIL_COUNT)])
_SECONDS = TypeAdapter(
    Annotated[float, Field(ge=0, le=MAX_FAIL_SECONDS, allow_inf_nan=False)]
)


class FailureStatusModel(BaseModel):
    count_remaining: int = Field(description="Requests still to fail in count mode.")
    duration_remaining_seconds: float = Field(
        description="Seconds left in duration mode."
    )
    failing: bool = Field(description="Whether the next request would fail.")
    requests_seen: int = Field(description="GET /msg requests checked since start.")
    failures_injected: int = Field(description="Failures injected since start.")


def _status() -> FailureStatusModel:
    status = server_state().faults.status()
    return FailureStatusModel(
        count_remaining=status.count_remaining,
        duration_remaining_seconds=status.duration_remaining_seconds,
        failing=status.failing,
        requests_seen=status.requests_seen,
        failures_injected=status.failures_injected,
    )


@blueprint.post("/count/<count>")
@tag(["faults"])
@validate_response(FailureStatusModel, 200)
@validate_response(ValidationErrorDetail, 422)
async def fail_count(
    count: str,
) -> FailureStatusModel | tuple[ValidationErrorDetail, int]:
    """Fail the next ``count`` GET /msg requests (0 to 1,000,000)."""
    try:
        n = _COUNT.validate_strings(count)
    except ValidationError as error:
        return validation_detail(error, "path", "count"), 422
    server_state().faults.fail_next(n)
    return _status()


@blueprint.post("/duration/<seconds>")
@tag(["faults"])
@validate_response(FailureStatusModel, 200)
@validate_response(ValidationErrorDetail, 422)
async def fail_duration(
    seconds: str,
) -> FailureStatusModel | tuple[ValidationErrorDetail, int]:
    """Fail every GET /msg request for ``seconds`` (0 to 86,400, may be fractional)."""
    try:
        value = _SECONDS.validate_strings(seconds)
    except ValidationError as error:
        return validation_detail(error, "path", "seconds"), 422
    server_state().faults.fail_for(value)
    return _status()


@blueprint.post("/reset")
@tag(["faults"])
@validate_response(FailureStatusModel, 200)
async def fail_reset() -> FailureStatusModel:
    """Turn both failure modes off (the totals are kept)."""
    server_state().faults.reset()
    return _status()


@blueprint.get("/status")
@tag(["faults"])
@validate_response(FailureStatusModel, 200)
async def fail_status() -> FailureStatusModel:
    """Both modes' remaining budget, and totals since start."""
    return _status()
