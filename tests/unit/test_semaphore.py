"""SemaphoreRateLimiter: the concurrency bound, fairness, cancellation, usage forms."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience import AsyncRateLimiter, SemaphoreRateLimiter


async def test_bounds_concurrency_in_waves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """10 one-second jobs on 3 slots finish in 4 waves, never more than 3 at once."""
    limiter = SemaphoreRateLimiter(3)
    inside = peak = 0
    finished: list[float] = []

    async def job() -> None:
        nonlocal inside, peak
        async with limiter:
            inside += 1
            peak = max(peak, inside)
            await trio.sleep(1)
            inside -= 1
        finished.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(job)
    assert peak == 3
    assert sorted(finished) == [1.0] * 3 + [2.0] * 3 + [3.0] * 3 + [4.0]


async def test_waiters_are_served_in_arrival_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A freed slot goes to the task that has waited longest."""
    limiter = SemaphoreRateLimiter(1)
    order: list[int] = []

    async def job(i: int) -> None:
        async with limiter:
            order.append(i)
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        for i in range(5):
            nursery.start_soon(job, i)
            await trio.testing.wait_all_tasks_blocked()
    assert order == [0, 1, 2, 3, 4]


async def test_nowait_and_statistics(autojump_clock: trio.testing.MockClock) -> None:
    """acquire_nowait raises WouldBlock when full; statistics show use and waiters."""
    limiter = SemaphoreRateLimiter(2)

    async def hold() -> None:
        async with limiter:
            await trio.sleep(1)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(hold)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.WouldBlock):
            limiter.acquire_nowait()
        stats = limiter.statistics()
        assert (stats.max_concurrent, stats.in_use, stats.waiting) == (2, 2, 1)
    assert limiter.statistics().in_use == 0
    limiter.acquire_nowait()
    await limiter.release()
    assert limiter.statistics().in_use == 0


async def test_a_task_holds_at_most_one_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Re-entering in the same task raises instead of deadlocking, as in trio."""
    limiter = SemaphoreRateLimiter(5)
    async with limiter:
        with pytest.raises(RuntimeError, match="already holding"):
            await limiter.acquire()
    assert limiter.statistics().in_use == 0


async def test_cancelled_waiter_takes_no_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A waiter cancelled while queued leaves the slot count intact."""
    limiter = SemaphoreRateLimiter(1)

    async def impatient() -> None:
        with trio.move_on_after(1):
            async with limiter:
                pytest.fail("entered a full limiter")

    async with limiter, trio.open_nursery() as nursery:
        nursery.start_soon(impatient)
    assert trio.current_time() == 1.0
    assert limiter.statistics().in_use == 0
    limiter.acquire_nowait()


async def test_slot_released_when_the_body_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving the block by an exception frees the slot."""
    limiter = SemaphoreRateLimiter(1)
    with pytest.raises(KeyError):
        async with limiter:
            raise KeyError
    assert limiter.statistics().in_use == 0


async def test_decorator(autojump_clock: trio.testing.MockClock) -> None:
    """@limiter bounds concurrent calls of the decorated function."""
    limiter = SemaphoreRateLimiter(2)
    assert isinstance(limiter, AsyncRateLimiter)

    @limiter
    async def work(i: int) -> int:
        await trio.sleep(1)
        return i

    results: list[int] = []

    async def call(i: int) -> None:
        results.append(await work(i))

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(call, i)
    assert sorted(results) == [0, 1, 2, 3]
    assert trio.current_time() == 2.0
    assert limiter.max_concurrent == 2


def test_invalid_arguments() -> None:
    """max_concurrent is checked with exact messages."""
    with pytest.raises(ValueError, match=r"^max_concurrent must be >= 1$"):
        SemaphoreRateLimiter(0)
    with pytest.raises(TypeError, match=r"^max_concurrent must be an int, not float$"):
        SemaphoreRateLimiter(2.5)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"^SemaphoreRateLimiter can only decorate async functions$"
    ):
        SemaphoreRateLimiter(1)(print)  # type: ignore[arg-type]
