"""Built-in handlers on the default registry: echo, data_processing, long_running.

Each payload is checked when the job is submitted (a model per handler), so a job
that would hold a worker for ever (``step_delay=1e9``) is refused before it runs.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import trio
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from ._models import JobContext
from ._registry import register_handler

MAX_ITEMS = 100_000
MAX_STEP_DELAY = 60.0
MAX_DURATION = 3600.0


def _finite_number(value: Any) -> float:
    """An int or a finite float, kept as it is (an int stays an int)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


FiniteNumber = Annotated[
    Any, AfterValidator(_finite_number), WithJsonSchema({"type": "number"})
]


class DataProcessingPayload(BaseModel):
    """``data_processing``: numbers to summarise, and the pause between steps."""

    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[FiniteNumber] = Field(
        default_factory=list,
        max_length=MAX_ITEMS,
        description=f"Finite numbers, at most {MAX_ITEMS:,}.",
    )
    step_delay: float = Field(
        0.1,
        ge=0,
        le=MAX_STEP_DELAY,
        allow_inf_nan=False,
        description="Seconds between steps, 0 to 60.",
    )


class LongRunningPayload(BaseModel):
    """``long_running``: how long to run."""

    model_config = ConfigDict(extra="forbid", strict=True)

    duration: float = Field(
        5.0,
        ge=0,
        le=MAX_DURATION,
        allow_inf_nan=False,
        description="Seconds to run, 0 to 3600.",
    )


@register_handler("echo")
async def echo(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Return the payload unchanged (any JSON object)."""
    await trio.lowlevel.checkpoint()
    return payload


@register_handler("data_processing", payload=DataProcessingPayload)
async def data_processing(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Validate, transform and summarise ``payload["items"]`` (numbers), step by step.

    Each step reports an intermediate result; ``step_delay`` paces them.
    """
    items: list[float] = payload["items"]
    delay: float = payload["step_delay"]
    await trio.sleep(delay)
    ctx.add_result({"step": "validated", "count": len(items)})
    doubled = [x * 2 for x in items]
    await trio.sleep(delay)
    ctx.add_result({"step": "transformed", "sample": doubled[:5]})
    await trio.sleep(delay)
    total = sum(doubled)
    ctx.add_result({"step": "aggregated", "sum": total})
    return {
        "count": len(items),
        "sum": total,
        "mean": total / len(items) if items else None,
    }


@register_handler("long_running", payload=LongRunningPayload)
async def long_running(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Run for ``payload["duration"]`` seconds, reporting progress every second."""
    duration: float = payload["duration"]
    start = trio.current_time()
    elapsed = 0.0
    while elapsed < duration:
        await trio.sleep(min(1.0, duration - elapsed))
        elapsed = trio.current_time() - start
        ctx.add_result({"progress": round(min(1.0, elapsed / duration), 4)})
    return {"duration": duration}
