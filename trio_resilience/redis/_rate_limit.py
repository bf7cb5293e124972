"""`TokenBucketRateLimiter`'s twin in Redis: one rate limit shared by many processes.

The bucket is a GCRA (generic cell rate algorithm) kept as one number in Redis, the
*theoretical arrival time* (TAT) of the next operation, on the Redis clock
(``redis.call('TIME')``), so every process agrees on time. It runs in *reserve*
mode: one Lua script call books the caller's slot (advances the TAT by ``1/rate``)
and answers how long the caller must wait for it; the caller then sleeps exactly
that long. Waiters are queued by the order their reservations reached Redis, never
poll, and never stampede when a slot frees.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import trio

from .._validation import check_async_callable, check_number
from ..limiters import TokenBucketRateLimiterStatistics
from ._connection import RedisConnection, RedisUnavailableError, connection_for

P = ParamSpec("P")
T = TypeVar("T")

# Times are microseconds on the Redis clock, as doubles (exact to well below a
# microsecond for today's epoch); stored with %.17g since Lua's default
# number-to-string conversion keeps only 14 digits.
_CLOCK = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local interval = 1000000 / tonumber(ARGV[1])
"""

# Book one slot: the caller may start at ``slot``, ``delay`` microseconds from now.
# The key lives until the bucket would be full again (TAT <= now).
_RESERVE = (
    _CLOCK
    + """
local burst = tonumber(ARGV[2]) * interval
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
tat = tat + interval
local slot = tat - burst
redis.call('SET', KEYS[1], string.format('%.17g', tat),
           'PX', string.format('%d', math.ceil((tat - now) / 1000)))
return {string.format('%.17g', math.max(slot - now, 0)),
        string.format('%.17g', slot)}
"""
)

# Give a booked slot back, only while it is still ahead. While any booked slot is
# ahead the bucket is not full, so the TAT moves linearly and taking one interval
# off leaves it exactly as if the slot had never been booked; slots booked after it
# keep their (later) times, which only delays them, so the limit still holds.
_REFUND = (
    _CLOCK
    + """
if now >= tonumber(ARGV[2]) then return 0 end
local tat = tonumber(redis.call('GET', KEYS[1]) or false)
if not tat then return 0 end
tat = tat - interval
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%.17g', tat),
             'PX', string.format('%d', math.ceil((tat - now) / 1000)))
end
return 1
"""
)

# Whole tokens' worth of slack before the TAT catches up with now: capacity when
# the bucket is full, negative while slots are booked ahead.
_PEEK = (
    _CLOCK
    + """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
return string.format('%.17g', tonumber(ARGV[2]) - (tat - now) / interval)
"""
)

_REFUND_TIMEOUT = 1.0
"""How long a cancelled waiter tries to give its slot back before giving up."""


class _Scripts:
    """The limiter's scripts, registered on one connection."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.reserve = connection.script(_RESERVE)
        self.refund = connection.script(_REFUND)
        self.peek = connection.script(_PEEK)


class RedisTokenBucketRateLimiter:
    """`TokenBucketRateLimiter` with its bucket in Redis, shared by every process.

    Every limiter made with the same Redis database and ``key`` (and, please, the
    same ``rate`` and ``capacity``) draws on one bucket: together they admit on
    average ``rate`` operations per second, in bursts of up to ``capacity``, and
    over any window of ``T`` seconds at most ``capacity + rate * T``, whichever
    processes and machines they run in. Time is the Redis server's clock, so it is
    real time even under `trio.testing.MockClock`.

    `acquire` is one script call (one round trip) that books the next free slot and
    returns the wait until it; the caller sleeps that long with `trio.sleep`.
    Callers are served in the order their bookings reached Redis. If the caller is
    cancelled while it sleeps, a second script call gives the slot back (shielded,
    for at most a second; if Redis cannot be reached then, the slot is lost, never
    handed out twice). A cancellation that lands while the booking itself is on the
    wire may lose that slot too. Like the in-memory bucket it limits how often
    operations *start*, so `release` gives nothing back.

    ``url`` is a ``redis://host:port/db`` URL, whose connection `shared_connection`
    keeps open for each `trio.run` (so a limiter made at module level works in
    every run), or an open `RedisConnection` to use as it is. When Redis cannot be
    reached, `acquire` raises `RedisUnavailableError`: nothing is admitted without
    the shared bucket. The key expires once the bucket would be full again.

    >>> limiter = RedisTokenBucketRateLimiter(
    ...     "redis://127.0.0.1:6380/0", "api:search", rate=10, capacity=20
    ... )
    >>> async with limiter:
    ...     await send()
    """

    __slots__ = ("_capacity", "_key", "_rate", "_scripts", "_url", "_waiting")

    def __init__(
        self, url: str | RedisConnection, key: str, rate: float, capacity: float
    ) -> None:
        if not isinstance(url, str | RedisConnection):
            raise TypeError(
                f"url must be a str or a RedisConnection, not {type(url).__name__}"
            )
        if not isinstance(key, str):
            raise TypeError(f"key must be a str, not {type(key).__name__}")
        if not key:
            raise ValueError("key must not be empty")
        self._rate = check_number("rate", rate, above=0)
        self._capacity = check_number("capacity", capacity, at_least=1)
        self._url = url
        self._key = key
        self._scripts: _Scripts | None = None
        self._waiting = 0

    def __repr__(self) -> str:
        return (
            f"<RedisTokenBucketRateLimiter key={self._key!r} rate={self._rate:g}/s"
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

    @property
    def key(self) -> str:
        """The Redis key that holds the bucket."""
        return self._key

    async def _get_scripts(self) -> _Scripts:
        connection = await connection_for(self._url)
        scripts = self._scripts
        if scripts is None or scripts.connection is not connection:
            scripts = self._scripts = _Scripts(connection)
        return scripts

    def _args(self) -> list[str | int | float | bytes]:
        return [repr(self._rate), repr(self._capacity)]

    async def acquire(self) -> None:
        """Book the next slot in Redis and sleep until it comes.

        Raises `RedisUnavailableError` if Redis cannot be reached.
        """
        scripts = await self._get_scripts()
        delay, slot = await scripts.reserve([self._key], self._args())
        seconds = float(delay) / 1e6
        if seconds <= 0:
            return
        self._waiting += 1
        try:
            await trio.sleep(seconds)
        except trio.Cancelled:
            with (
                trio.move_on_after(_REFUND_TIMEOUT, shield=True),
                contextlib.suppress(RedisUnavailableError),
            ):
                await scripts.refund([self._key], [repr(self._rate), slot])
            raise
        finally:
            self._waiting -= 1

    async def release(self) -> None:
        """Nothing to give back (a started operation keeps its slot); never blocks."""

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        pass

    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        """Run every call of the async function ``fn`` under this limiter."""
        check_async_callable(type(self).__name__, fn)

        @functools.wraps(fn)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> T:
            await self.acquire()
            return await fn(*args, **kwargs)

        return limited

    async def statistics(self) -> TokenBucketRateLimiterStatistics:
        """The shared bucket now (one round trip) and this object's sleepers.

        ``tokens`` is negative while slots are booked ahead of time; ``waiting``
        counts the tasks of this process sleeping on a booked slot of this object.
        """
        scripts = await self._get_scripts()
        tokens = await scripts.peek([self._key], self._args())
        return TokenBucketRateLimiterStatistics(
            rate=self._rate,
            capacity=self._capacity,
            tokens=float(tokens),
            waiting=self._waiting,
        )
