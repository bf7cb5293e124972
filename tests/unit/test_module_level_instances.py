"""Primitives made at module level, as the README shows, across pytest-trio tests.

pytest-trio runs every test in its own `trio.run`, each on a new virtual clock that
starts at 0. Every test below first checks that the shared objects behave as new,
then leaves them as dirty as it can (drained, OPEN, a slot never released, a loop
used up), so each test checks the objects whatever test ran before it, in any order.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience import (
    Backoff,
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitState,
    PerKeyRateLimiter,
    SemaphoreRateLimiter,
    TokenBucketRateLimiter,
    retry,
    retry_context,
)

EXACT = Backoff(initial=1.0, maximum=1.0, jitter=False)

BREAKER = CircuitBreaker(failure_threshold=1, recovery_timeout=30.0)
BUCKET = TokenBucketRateLimiter(rate=1, capacity=2)
SLOTS = SemaphoreRateLimiter(max_concurrent=1)
ATTEMPTS = retry_context(on=ValueError, attempts=2, backoff=EXACT)
PER_KEY: PerKeyRateLimiter[str, TokenBucketRateLimiter] = PerKeyRateLimiter(
    lambda: TokenBucketRateLimiter(rate=1, capacity=1), idle_timeout=60
)
calls: list[float] = []


class Boom(Exception):
    pass


@retry(on=ValueError, attempts=2, backoff=EXACT)
async def flaky() -> str:
    calls.append(trio.current_time())
    await trio.lowlevel.checkpoint()
    if len(calls) % 2:
        raise ValueError
    return "ok"


ROUNDS = pytest.mark.parametrize("round_", range(3))


async def check_breaker_is_new() -> None:
    stats = BREAKER.statistics()
    assert (stats.state, stats.total_failures, stats.total_rejections) == (
        CircuitState.CLOSED,
        0,
        0,
    )
    async with BREAKER:
        await trio.lowlevel.checkpoint()


async def leave_breaker_open(late: float) -> None:
    await trio.sleep(late)
    with pytest.raises(Boom):
        async with BREAKER:
            raise Boom
    assert BREAKER.state is CircuitState.OPEN


async def check_bucket_is_new() -> None:
    assert BUCKET.statistics().tokens == 2.0
    for _ in range(2):
        BUCKET.acquire_nowait()  # a full bucket: no wait
    start = trio.current_time()
    await BUCKET.acquire()
    assert trio.current_time() == start + 1.0


async def check_slots_are_new() -> None:
    assert SLOTS.statistics().in_use == 0
    SLOTS.acquire_nowait()
    await SLOTS.release()
    await SLOTS.acquire()  # and never released: the run ends holding it


async def check_attempts_are_new() -> None:
    seen = []
    async for attempt in ATTEMPTS:
        with attempt:
            seen.append((attempt.num, trio.current_time()))
            if attempt.num == 1:
                raise ValueError
    start = seen[0][1]
    assert seen == [(1, start), (2, start + 1.0)]


async def check_decorated_function() -> None:
    start = trio.current_time()
    calls.clear()
    assert await flaky() == "ok"
    assert calls == [start, start + 1.0]


async def check_per_key_is_new() -> None:
    async with PER_KEY:
        assert len(PER_KEY) == 0
        async with PER_KEY.limit("k"):
            pass
        assert len(PER_KEY) == 1


@ROUNDS
async def test_breaker(autojump_clock: trio.testing.MockClock, round_: int) -> None:
    """A module-level breaker is CLOSED and clean in every test."""
    await check_breaker_is_new()
    await leave_breaker_open(late=100.0 * round_)
    with pytest.raises(CircuitBreakerOpenError):
        async with BREAKER:
            pass


@ROUNDS
async def test_token_bucket(
    autojump_clock: trio.testing.MockClock, round_: int
) -> None:
    """A module-level token bucket is full in every test."""
    await check_bucket_is_new()
    await trio.sleep(100.0 * round_)
    for _ in range(2):
        await BUCKET.acquire()  # drained again, late on this test's clock


@ROUNDS
async def test_semaphore(autojump_clock: trio.testing.MockClock, round_: int) -> None:
    """A module-level semaphore has every slot free in every test."""
    await check_slots_are_new()


@ROUNDS
async def test_retry_context(
    autojump_clock: trio.testing.MockClock, round_: int
) -> None:
    """A module-level retry_context runs its block from attempt 1 in every test."""
    await check_attempts_are_new()
    await trio.sleep(100.0 * round_)
    await check_attempts_are_new()


@ROUNDS
async def test_retry_decorator(
    autojump_clock: trio.testing.MockClock, round_: int
) -> None:
    """A module-level decorated function retries on each test's clock."""
    await check_decorated_function()
    await trio.sleep(100.0 * round_)
    await check_decorated_function()


@ROUNDS
async def test_per_key_limiter(
    autojump_clock: trio.testing.MockClock, round_: int
) -> None:
    """A module-level PerKeyRateLimiter starts with no keys in every test."""
    await check_per_key_is_new()


@ROUNDS
async def test_all_together(
    autojump_clock: trio.testing.MockClock, round_: int
) -> None:
    """Every module-level object is new in a test that uses them all."""
    await check_breaker_is_new()
    await check_bucket_is_new()
    await check_slots_are_new()
    await check_attempts_are_new()
    await check_decorated_function()
    await check_per_key_is_new()
    await leave_breaker_open(late=50.0 * round_)
