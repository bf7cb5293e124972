"""Built-in handlers on the default registry: echo, data_processing, long_running."""

from __future__ import annotations

from typing import Any

import trio

from ._models import JobContext
from ._registry import register_handler


@register_handler("echo")
async def echo(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Return the payload unchanged."""
    await trio.lowlevel.checkpoint()
    return payload


@register_handler("data_processing")
async def data_processing(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Validate, transform and summarise ``payload["items"]`` (numbers), step by step.

    Each step reports an intermediate result; ``step_delay`` (seconds, default 0.1)
    paces them.
    """
    items = payload.get("items", [])
    delay = float(payload.get("step_delay", 0.1))
    if not isinstance(items, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in items
    ):
        raise ValueError("items must be a list of numbers")
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


@register_handler("long_running")
async def long_running(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    """Run for ``payload["duration"]`` seconds (default 5), reporting every second."""
    duration = float(payload.get("duration", 5))
    if not 0 <= duration <= 3600:
        raise ValueError("duration must be between 0 and 3600 seconds")
    start = trio.current_time()
    elapsed = 0.0
    while elapsed < duration:
        await trio.sleep(min(1.0, duration - elapsed))
        elapsed = trio.current_time() - start
        ctx.add_result({"progress": round(min(1.0, elapsed / duration), 4)})
    return {"duration": duration}
