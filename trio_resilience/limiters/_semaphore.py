"""A concurrency limit: at most N holders at once."""

from __future__ import annotations

import attrs
import trio

from .._validation import check_int
from ._base import LimiterMixin


@attrs.frozen
class SemaphoreRateLimiterStatistics:
    """A snapshot of a `SemaphoreRateLimiter`."""

    max_concurrent: int
    in_use: int
    waiting: int


class SemaphoreRateLimiter(LimiterMixin):
    """Allow at most ``max_concurrent`` operations at a time.

    A thin layer over `trio.CapacityLimiter` that speaks the `AsyncRateLimiter`
    protocol. It bounds how many run *at once*, not how many start per second (that is
    `TokenBucketRateLimiter`). Waiters are served first come, first served. As with
    `trio.CapacityLimiter`, a slot belongs to the task that acquired it: that task
    must release it, and holding two slots of one limiter at once raises
    `RuntimeError` (which catches accidental re-entry, a classic deadlock).

    >>> limiter = SemaphoreRateLimiter(10)
    >>> async with limiter:
    ...     await fetch()
    """

    __slots__ = ("_limiter",)

    def __init__(self, max_concurrent: int) -> None:
        check_int("max_concurrent", max_concurrent, minimum=1)
        self._limiter = trio.CapacityLimiter(max_concurrent)

    def __repr__(self) -> str:
        stats = self._limiter.statistics()
        return (
            f"<SemaphoreRateLimiter {stats.borrowed_tokens}/{stats.total_tokens}"
            f" in use, {stats.tasks_waiting} waiting>"
        )

    @property
    def max_concurrent(self) -> int:
        """The number of operations allowed at once."""
        return int(self._limiter.total_tokens)

    async def acquire(self) -> None:
        """Wait for a free slot and take it."""
        await self._limiter.acquire()

    def acquire_nowait(self) -> None:
        """Take a free slot, or raise `trio.WouldBlock` if none is free."""
        self._limiter.acquire_nowait()

    def _release(self) -> None:
        self._limiter.release()

    def statistics(self) -> SemaphoreRateLimiterStatistics:
        """Slots in use and tasks waiting, as a frozen snapshot."""
        stats = self._limiter.statistics()
        return SemaphoreRateLimiterStatistics(
            max_concurrent=int(stats.total_tokens),
            in_use=stats.borrowed_tokens,
            waiting=stats.tasks_waiting,
        )
