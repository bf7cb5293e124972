"""A concurrency limit: at most N holders at once."""

from __future__ import annotations

import attrs
import trio

from .._runbound import RunBound, current_run
from .._validation import check_int
from ._base import LimiterMixin


@attrs.frozen
class SemaphoreRateLimiterStatistics:
    """A snapshot of a `SemaphoreRateLimiter`."""

    max_concurrent: int
    in_use: int
    waiting: int


class SemaphoreRateLimiter(LimiterMixin, RunBound):
    """Allow at most ``max_concurrent`` operations at a time.

    A thin layer over `trio.CapacityLimiter` that speaks the `AsyncRateLimiter`
    protocol. It bounds how many run *at once*, not how many start per second (that is
    `TokenBucketRateLimiter`). Waiters are served first come, first served. As with
    `trio.CapacityLimiter`, a slot belongs to the task that acquired it: that task
    must release it, and holding two slots of one limiter at once raises
    `RuntimeError` (which catches accidental re-entry, a classic deadlock).

    The slots belong to the `trio.run` that uses the limiter: on its first use in
    another run (pytest-trio starts one per test) every slot is free again, as if new,
    so a slot that a finished run never released cannot block the next one.

    >>> limiter = SemaphoreRateLimiter(10)
    >>> async with limiter:
    ...     await fetch()
    """

    __slots__ = ("_limiter",)

    def __init__(self, max_concurrent: int) -> None:
        check_int("max_concurrent", max_concurrent, minimum=1)
        self._limiter = trio.CapacityLimiter(max_concurrent)
        self._run = None

    def _start_run(self) -> None:
        self._limiter = trio.CapacityLimiter(self._limiter.total_tokens)

    def __repr__(self) -> str:
        if current_run() is not self._run:
            self._enter_run()
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
        if current_run() is not self._run:
            self._enter_run()
        await self._limiter.acquire()

    def acquire_nowait(self) -> None:
        """Take a free slot, or raise `trio.WouldBlock` if none is free."""
        if current_run() is not self._run:
            self._enter_run()
        self._limiter.acquire_nowait()

    def _release(self) -> None:
        # No run check: a slot is released by the task that took it, so in the run
        # that last bound the limiter; any other task gets CapacityLimiter's error.
        self._limiter.release()

    def statistics(self) -> SemaphoreRateLimiterStatistics:
        """Slots in use and tasks waiting, as a frozen snapshot."""
        if current_run() is not self._run:
            self._enter_run()
        stats = self._limiter.statistics()
        return SemaphoreRateLimiterStatistics(
            max_concurrent=int(stats.total_tokens),
            in_use=stats.borrowed_tokens,
            waiting=stats.tasks_waiting,
        )
