"""A rate limit: ``rate`` operations per second, in bursts up to ``capacity``."""

from __future__ import annotations

import attrs
import trio

from .._validation import check_number
from ._base import LimiterMixin


@attrs.frozen
class TokenBucketRateLimiterStatistics:
    """A snapshot of a `TokenBucketRateLimiter`."""

    rate: float
    capacity: float
    tokens: float
    waiting: int


class TokenBucketRateLimiter(LimiterMixin):
    """Admit on average ``rate`` operations per second, in bursts of up to ``capacity``.

    The bucket starts full and refills continuously at ``rate`` tokens per second up
    to ``capacity``; each `acquire` takes one token. Over any window of ``T`` seconds
    it admits at most ``capacity + rate * T`` operations. It limits how often
    operations *start*, not how many run at once (that is `SemaphoreRateLimiter`), so
    `release` gives nothing back and exists only to satisfy the protocol.

    Waiting is fair and costs nothing while it lasts: tasks are served in arrival
    order, and only the first in line sleeps, exactly until its token is due (on trio
    time, so `trio.testing.MockClock` controls it). A cancelled waiter leaves the line
    without taking a token.

    >>> limiter = TokenBucketRateLimiter(rate=10, capacity=20)
    >>> async with limiter:
    ...     await send()
    """

    __slots__ = ("_capacity", "_empty_at", "_interval", "_line", "_rate")

    def __init__(self, rate: float, capacity: float) -> None:
        self._rate = check_number("rate", rate, above=0)
        self._capacity = check_number("capacity", capacity, at_least=1)
        self._interval = 1.0 / self._rate
        # The trio time at which the bucket was (or will be) empty; tokens held at
        # time t are (t - _empty_at) * rate, capped at capacity. None until first use,
        # so the limiter can be created outside trio.run.
        self._empty_at: float | None = None
        # trio.Lock is FIFO-fair: its holder is the next task to be served.
        self._line = trio.Lock()

    def __repr__(self) -> str:
        return (
            f"<TokenBucketRateLimiter rate={self._rate:g}/s"
            f" capacity={self._capacity:g}>"
        )

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self._rate

    @property
    def capacity(self) -> float:
        """The most tokens the bucket holds, that is, the largest burst."""
        return self._capacity

    def _empty_time(self, now: float) -> float:
        floor = now - self._capacity * self._interval
        if self._empty_at is None or self._empty_at < floor:
            self._empty_at = floor
        return self._empty_at

    def _take_nowait(self) -> None:
        now = trio.current_time()
        empty_at = self._empty_time(now)
        if now < empty_at + self._interval:
            raise trio.WouldBlock
        self._empty_at = empty_at + self._interval

    def acquire_nowait(self) -> None:
        """Take a token now; raise `trio.WouldBlock` if none is due or others wait."""
        if self._line.locked():
            raise trio.WouldBlock
        self._take_nowait()

    async def acquire(self) -> None:
        """Wait until a token is due, in arrival order, and take it."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            self.acquire_nowait()
        except trio.WouldBlock:
            async with self._line:
                while True:
                    try:
                        self._take_nowait()
                    except trio.WouldBlock:
                        assert self._empty_at is not None
                        await trio.sleep_until(self._empty_at + self._interval)
                    else:
                        return
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()

    def _release(self) -> None:
        pass

    def statistics(self) -> TokenBucketRateLimiterStatistics:
        """Tokens available now and tasks waiting, as a frozen snapshot."""
        now = trio.current_time()
        tokens = (now - self._empty_time(now)) * self._rate
        line = self._line.statistics()
        return TokenBucketRateLimiterStatistics(
            rate=self._rate,
            capacity=self._capacity,
            tokens=min(self._capacity, tokens),
            waiting=line.tasks_waiting + (1 if line.locked else 0),
        )
