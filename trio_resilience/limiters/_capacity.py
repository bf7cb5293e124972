"""Taking a `trio.CapacityLimiter` slot within a time limit."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import trio


async def acquire_on_behalf_of_within(
    limiter: trio.CapacityLimiter,
    borrower: object,
    max_wait: float,
    waiting: Callable[[], AbstractContextManager[object]] | None = None,
) -> bool:
    """Take a slot of ``limiter`` for ``borrower``, waiting at most ``max_wait`` s.

    Returns True once the slot is held (release it with
    ``limiter.release_on_behalf_of(borrower)``), False if none came free in time.
    A free slot is taken at once without a checkpoint, for callers whose next step
    is one anyway; waiting is first come, first served. ``max_wait`` may be
    ``math.inf``. Cancellation from outside propagates as usual, holding no slot.

    ``waiting()``, if given, makes a context manager that is entered when no slot
    is free at once (even with a ``max_wait`` of 0) and left when the wait ends,
    however it ends: a count of waits, a gauge of waiters.
    """
    try:
        limiter.acquire_on_behalf_of_nowait(borrower)
    except trio.WouldBlock:
        with nullcontext() if waiting is None else waiting():
            if max_wait <= 0:
                return False
            with trio.move_on_after(max_wait):
                await limiter.acquire_on_behalf_of(borrower)
                return True
            return False
    return True
