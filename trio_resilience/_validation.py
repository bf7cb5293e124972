"""Argument checks with exact messages, shared by every public constructor.

Misuse raises the built-ins, like trio does: `TypeError` for a value of the wrong
type, `ValueError` for a value out of range, each with a message naming the argument.
"""

from __future__ import annotations

import inspect
import math


def check_int(name: str, value: object, *, minimum: int) -> int:
    """``value`` as an int ``>= minimum``; bools are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}")
    return value


def check_number(
    name: str,
    value: object,
    *,
    above: float | None = None,
    at_least: float | None = None,
) -> float:
    """``value`` as a finite float, ``> above`` or ``>= at_least``; no bools."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if above is not None and not value > above:
        raise ValueError(f"{name} must be > {above:g}")
    if at_least is not None and not value >= at_least:
        raise ValueError(f"{name} must be >= {at_least:g}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite")
    return float(value)


def check_async_callable(decorator: str, fn: object) -> None:
    """Refuse to decorate anything that is not an async function (or async callable).

    Catching this when decorating beats a puzzling "can't be used in 'await'
    expression" on the first call.
    """
    if inspect.iscoroutinefunction(fn):
        return
    call = getattr(fn, "__call__", None)  # noqa: B004 - instances with async __call__
    if callable(fn) and inspect.iscoroutinefunction(call):
        return
    raise TypeError(f"{decorator} can only decorate async functions")
