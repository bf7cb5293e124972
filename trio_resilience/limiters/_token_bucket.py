"""A rate limit: ``rate`` operations per second, in bursts up to ``capacity``."""

from __future__ import annotations

import math

import attrs
import trio

from .._runbound import RunBound, current_run
from .._validation import check_number
from ._base import LimiterMixin


@attrs.frozen
class TokenBucketRateLimiterStatistics:
    """A snapshot of a `TokenBucketRateLimiter`."""

    rate: float
    capacity: float
    tokens: float
    waiting: int


class TokenBucketRateLimiter(LimiterMixin, RunBound):
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

    The bucket belongs to the `trio.run` that uses it: on its first use in another
    run (pytest-trio starts one per test) it starts full again, as if new, since the
    times it kept were read from another run's clock.

    >>> limiter = TokenBucketRateLimiter(rate=10, capacity=20)
    >>> async with limiter:
    ...     await send()
    """

    __slots__ = ("_capacity", "_line", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, capacity: float) -> None:
        self._rate = check_number("rate", rate, above=0)
        self._capacity = check_number("capacity", capacity, at_least=1)
        self._run = None
        self._start_run()

    def _start_run(self) -> None:
        # Tokens held at trio time _stamp; None until first use in a run, so the
        # limiter can be created outside trio.run. Whole tokens are counted, never
        # derived from absolute times, so a burst admits exactly `capacity` whatever
        # the clock's offset or the float rounding of 1/rate.
        self._tokens = self._capacity
        self._stamp: float | None = None
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

    def _tokens_at(self, now: float) -> float:
        if self._stamp is None:
            return self._capacity
        return min(self._capacity, self._tokens + (now - self._stamp) * self._rate)

    def _due(self, now: float) -> float:
        """The trio time at which the next whole token is due."""
        if self._stamp is None:
            return now
        return self._stamp + (1.0 - self._tokens) / self._rate

    def _take_nowait(self) -> None:
        now = trio.current_time()
        tokens = self._tokens_at(now)
        # `now >= due` admits a waiter woken at its due time even when float rounding
        # leaves the refill a hair under one token; `tokens > 0` keeps a rate finer
        # than the clock's resolution from admitting more than `capacity` at once.
        if tokens < 1.0 and not (tokens > 0.0 and now >= self._due(now)):
            raise trio.WouldBlock
        self._tokens = tokens - 1.0
        self._stamp = now

    def acquire_nowait(self) -> None:
        """Take a token now; raise `trio.WouldBlock` if none is due or others wait."""
        if current_run() is not self._run:
            self._enter_run()
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
                        now = trio.current_time()
                        # at least one clock tick ahead, so the loop always progresses
                        tick = math.nextafter(now, math.inf)
                        await trio.sleep_until(max(self._due(now), tick))
                    else:
                        return
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()

    def _release(self) -> None:
        pass

    def statistics(self) -> TokenBucketRateLimiterStatistics:
        """Tokens available now and tasks waiting, as a frozen snapshot."""
        if current_run() is not self._run:
            self._enter_run()
        tokens = self._tokens_at(trio.current_time())
        line = self._line.statistics()
        return TokenBucketRateLimiterStatistics(
            rate=self._rate,
            capacity=self._capacity,
            tokens=tokens,
            waiting=line.tasks_waiting + (1 if line.locked else 0),
        )
