"""Time state is bound to its trio.run: one object used by two runs in one process.

Each test calls `trio.run` twice with a fresh `MockClock(autojump_threshold=0)`. The
first run leaves the object in a state holding that run's times (drained at t=1000,
opened at t=1000, ...); the second run starts its clock at 0 again, so an object that
carried its times over would still be drained or OPEN there.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import trio
import trio.testing

from trio_resilience import (
    Backoff,
    CircuitBreaker,
    CircuitBreakerTicket,
    CircuitState,
    PerKeyRateLimiter,
    RetryBudget,
    SemaphoreRateLimiter,
    TokenBucketRateLimiter,
    retry,
    retry_context,
)

T = TypeVar("T")
EXACT = Backoff(initial=0.5, maximum=4.0, jitter=False)


class Boom(Exception):
    pass


def run(fn: Callable[[], Awaitable[T]]) -> T:
    """One trio.run on a fresh virtual clock that starts at 0."""
    return trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


async def admit_times(limiter: TokenBucketRateLimiter, n: int) -> list[float]:
    times = []
    for _ in range(n):
        await limiter.acquire()
        times.append(trio.current_time())
    return times


# -- token bucket ----------------------------------------------------------------------


def test_token_bucket_starts_full_in_a_new_run() -> None:
    """A bucket drained in one run is full at t=0 of the next, refilling from there."""
    bucket = TokenBucketRateLimiter(rate=2, capacity=3)

    async def drain_late() -> list[float]:
        await trio.sleep(1000)
        return await admit_times(bucket, 4)

    async def fresh() -> tuple[float, list[float]]:
        tokens = bucket.statistics().tokens
        return tokens, await admit_times(bucket, 5)

    assert run(drain_late) == [1000.0, 1000.0, 1000.0, 1000.5]
    assert run(fresh) == (3.0, [0.0, 0.0, 0.0, 0.5, 1.0])


def test_token_bucket_made_outside_any_run_binds_to_its_first() -> None:
    """A bucket created at import time behaves as new in each of two runs."""
    bucket = TokenBucketRateLimiter(rate=1, capacity=1)

    async def use() -> list[float]:
        return await admit_times(bucket, 2)

    assert run(use) == [0.0, 1.0]
    assert run(use) == [0.0, 1.0]


# -- circuit breaker -------------------------------------------------------------------


def test_breaker_opened_in_one_run_is_closed_in_the_next() -> None:
    """A breaker OPEN when a run ends is CLOSED, with clean counters, in the next."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0)

    async def open_late() -> None:
        await trio.sleep(1000)
        breaker.admit_nowait().settle(Boom())
        assert breaker.state is CircuitState.OPEN

    async def later_run() -> tuple[CircuitState, float, int, int]:
        await trio.sleep(2)
        stats = breaker.statistics()
        return (
            stats.state,
            stats.seconds_until_half_open,
            stats.total_failures,
            stats.total_rejections,
        )

    run(open_late)
    assert run(later_run) == (CircuitState.CLOSED, 0.0, 0, 0)


def test_breaker_runs_its_recovery_on_the_new_runs_clock() -> None:
    """Opened in a second run, it turns HALF_OPEN exactly recovery_timeout later."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0)
    woke: list[float] = []

    async def open_and_wait() -> None:
        await trio.sleep(5)
        breaker.admit_nowait().settle(Boom())
        await breaker.wait_state(CircuitState.HALF_OPEN)
        woke.append(trio.current_time())

    async def open_and_hang() -> None:
        await trio.sleep(1000)
        breaker.admit_nowait().settle(Boom())

    run(open_and_hang)
    run(open_and_wait)
    assert woke == [6.0]


def test_ticket_from_a_previous_run_changes_nothing() -> None:
    """Settling a ticket admitted in an earlier run records no outcome in this one."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10.0)
    leaked: list[CircuitBreakerTicket] = []

    async def leak_a_probe() -> None:
        breaker.admit_nowait().settle(Boom())
        await trio.sleep(10)
        leaked.append(breaker.admit_nowait())
        assert leaked[0].is_probe

    async def settle_it_now() -> tuple[CircuitState, int, int]:
        leaked[0].settle(Boom())
        stats = breaker.statistics()
        return stats.state, stats.total_failures, stats.half_open_calls

    run(leak_a_probe)
    assert run(settle_it_now) == (CircuitState.CLOSED, 0, 0)


def test_breaker_observed_between_runs_keeps_its_last_state() -> None:
    """Outside any run nothing is reset: statistics show what the last run left."""
    breaker = CircuitBreaker(failure_threshold=5)

    async def use() -> None:
        breaker.admit_nowait().settle()
        breaker.admit_nowait().settle(Boom())

    run(use)
    stats = breaker.statistics()
    assert (stats.state, stats.total_successes, stats.total_failures) == (
        CircuitState.CLOSED,
        1,
        1,
    )
    assert breaker.state is CircuitState.CLOSED

    async def fresh() -> tuple[int, int]:
        stats = breaker.statistics()
        return stats.total_successes, stats.total_failures

    assert run(fresh) == (0, 0)


# -- semaphore -------------------------------------------------------------------------


def test_semaphore_slot_left_by_a_finished_run_is_free_in_the_next() -> None:
    """A slot a run never released does not block the next run."""
    slots = SemaphoreRateLimiter(1)

    async def leak() -> None:
        await slots.acquire()

    async def fresh() -> tuple[int, int]:
        before = slots.statistics().in_use
        slots.acquire_nowait()
        after = slots.statistics().in_use
        await slots.release()
        return before, after

    run(leak)
    assert slots.statistics().in_use == 1  # observed between runs: as left
    assert run(fresh) == (0, 1)


# -- retry -----------------------------------------------------------------------------


def test_retry_decorator_runs_on_each_runs_clock() -> None:
    """A decorated function retries at the exact backoff times of each run."""
    calls: list[float] = []

    @retry(on=ValueError, attempts=3, backoff=EXACT)
    async def flaky() -> str:
        calls.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if len(calls) % 3:
            raise ValueError
        return "ok"

    async def call_late() -> str:
        await trio.sleep(1000)
        return await flaky()

    assert run(call_late) == "ok"
    assert run(flaky) == "ok"
    assert calls == [1000.0, 1000.5, 1001.5, 0.0, 0.5, 1.5]


def test_retry_context_object_runs_again_in_a_new_run() -> None:
    """One retry_context object loops from attempt 1 in each of two runs."""
    attempts = retry_context(on=ValueError, attempts=3, backoff=EXACT)
    seen: list[tuple[int, float]] = []

    async def loop() -> None:
        async for attempt in attempts:
            with attempt:
                seen.append((attempt.num, trio.current_time()))
                if attempt.num < 2:
                    raise ValueError

    run(loop)
    run(loop)
    assert seen == [(1, 0.0), (2, 0.5), (1, 0.0), (2, 0.5)]


# -- per-key limiter -------------------------------------------------------------------


def test_per_key_limiter_starts_empty_in_each_run() -> None:
    """A PerKeyRateLimiter opened in two runs forgets the keys of the first."""
    per_key: PerKeyRateLimiter[str, TokenBucketRateLimiter] = PerKeyRateLimiter(
        lambda: TokenBucketRateLimiter(rate=1, capacity=1), idle_timeout=60
    )

    async def use() -> tuple[int, list[float]]:
        async with per_key:
            keys_at_start = len(per_key)
            times = []
            for _ in range(2):
                async with per_key.limit("k"):
                    times.append(trio.current_time())
            return keys_at_start, times

    assert run(use) == (0, [0.0, 1.0])
    assert run(use) == (0, [0.0, 1.0])


def test_per_key_limiter_open_in_another_run_refuses_use() -> None:
    """While one run has it open, another run (another thread) gets a RuntimeError."""
    per_key: PerKeyRateLimiter[str, SemaphoreRateLimiter] = PerKeyRateLimiter(
        lambda: SemaphoreRateLimiter(1)
    )
    opened, done = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    async def hold_open() -> None:
        async with per_key:
            opened.set()
            await trio.to_thread.run_sync(done.wait)

    def holder() -> None:
        try:
            trio.run(hold_open)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)
            opened.set()

    async def use() -> None:
        message = r"^this PerKeyRateLimiter is open in another trio\.run$"
        with pytest.raises(RuntimeError, match=message):
            async with per_key.limit("k"):
                pass
        with pytest.raises(RuntimeError, match=message):
            await per_key.release("k")

    thread = threading.Thread(target=holder)
    thread.start()
    try:
        assert opened.wait(10)
        assert failures == []
        run(use)
    finally:
        done.set()
        thread.join(10)
    assert not thread.is_alive()
    assert failures == []
    assert len(per_key) == 0


def test_probe_deadline_is_on_the_admitting_runs_clock() -> None:
    """A probe's deadline is a time of the run that admitted it."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=2.0)
    deadlines: list[float] = []

    async def probe_at(start: float) -> None:
        await trio.sleep(start)
        breaker.admit_nowait().settle(Boom())
        await trio.sleep(2)
        deadlines.append(breaker.admit_nowait().deadline)

    run(lambda: probe_at(1000))
    run(lambda: probe_at(0))
    assert deadlines == [1004.0, 4.0]


# -- retry budget ----------------------------------------------------------------------


def test_retry_budget_forgets_a_late_run() -> None:
    """Spent at t=1000 of one run: at t=0 of the next (whose clock would put
    those withdrawals in the future, never leaving the window) it is full."""
    budget = RetryBudget(ratio=0, min_per_second=0.2, window=10)

    async def spend_late() -> list[bool]:
        await trio.sleep(1000)
        return [budget.try_withdraw() for _ in range(3)]

    async def spend_early() -> list[bool]:
        return [budget.try_withdraw() for _ in range(3)]

    assert run(spend_late) == [True, True, False]
    assert run(spend_early) == [True, True, False]
