"""TokenBucketRateLimiter: exact admission times, fairness, cancellation, the bound."""

from __future__ import annotations

from fractions import Fraction

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_resilience import AsyncRateLimiter, TokenBucketRateLimiter


async def admit_times(limiter: TokenBucketRateLimiter, n: int) -> list[float]:
    """Start n tasks in order, each acquiring once; return their admission times."""
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
            await trio.testing.wait_all_tasks_blocked()
    return times


async def test_starts_full_then_admits_at_rate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A burst of `capacity` passes at once; the rest follow every 1/rate seconds."""
    limiter = TokenBucketRateLimiter(rate=2, capacity=3)
    assert await admit_times(limiter, 7) == [0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 2.0]


async def test_refill_is_capped_at_capacity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """However long it idles, the bucket never holds more than `capacity` tokens."""
    limiter = TokenBucketRateLimiter(rate=4, capacity=2)
    await trio.sleep(100)
    assert limiter.statistics().tokens == 2.0
    assert await admit_times(limiter, 4) == [100.0, 100.0, 100.25, 100.5]


async def test_partial_refill(autojump_clock: trio.testing.MockClock) -> None:
    """Tokens accrue continuously: half an interval later half a token is there."""
    limiter = TokenBucketRateLimiter(rate=1, capacity=1)
    await limiter.acquire()
    await trio.sleep(0.5)
    assert limiter.statistics().tokens == 0.5
    await limiter.acquire()
    assert trio.current_time() == 1.0


async def test_slow_rates(autojump_clock: trio.testing.MockClock) -> None:
    """A rate below one per second spaces admissions more than a second apart."""
    limiter = TokenBucketRateLimiter(rate=0.25, capacity=1)
    assert await admit_times(limiter, 3) == [0.0, 4.0, 8.0]


async def test_waiters_are_served_in_arrival_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Waiting tasks get their tokens first come, first served."""
    limiter = TokenBucketRateLimiter(rate=1, capacity=1)
    order: list[int] = []

    async def one(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    async with trio.open_nursery() as nursery:
        for i in range(6):
            nursery.start_soon(one, i)
            await trio.testing.wait_all_tasks_blocked()
    assert order == list(range(6))
    assert trio.current_time() == 5.0


async def test_nowait_respects_waiters_and_empty_bucket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """acquire_nowait raises WouldBlock when empty or when others already wait."""
    limiter = TokenBucketRateLimiter(rate=1, capacity=1)
    limiter.acquire_nowait()
    with pytest.raises(trio.WouldBlock):
        limiter.acquire_nowait()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.acquire)
        nursery.start_soon(limiter.acquire)
        await trio.testing.wait_all_tasks_blocked()
        assert limiter.statistics().waiting == 2
        await trio.sleep(1.5)  # first waiter served at 1.0; the second waits for 2.0
        assert limiter.statistics().waiting == 1
        with pytest.raises(trio.WouldBlock):
            limiter.acquire_nowait()
    assert trio.current_time() == 2.0
    await trio.sleep(1)
    limiter.acquire_nowait()


async def test_cancelled_waiter_takes_no_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A waiter cancelled in line takes no token; the next one is not delayed."""
    limiter = TokenBucketRateLimiter(rate=1, capacity=1)
    await limiter.acquire()
    admitted: list[float] = []

    async def cancelled_waiter() -> None:
        with trio.move_on_after(0.5):
            await limiter.acquire()
            admitted.append(-1.0)

    async def patient_waiter() -> None:
        await limiter.acquire()
        admitted.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cancelled_waiter)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(patient_waiter)
    assert admitted == [1.0]
    assert await admit_times(limiter, 1) == [2.0]


async def test_acquire_is_a_cancellation_point_even_with_tokens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """acquire() in a cancelled scope raises Cancelled and takes no token."""
    limiter = TokenBucketRateLimiter(rate=1, capacity=1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await limiter.acquire()
    assert scope.cancelled_caught
    assert limiter.statistics().tokens == 1.0


async def test_usage_forms(autojump_clock: trio.testing.MockClock) -> None:
    """async with, the decorator and acquire/release all take one token each."""
    limiter = TokenBucketRateLimiter(rate=1, capacity=3)
    assert isinstance(limiter, AsyncRateLimiter)

    @limiter
    async def decorated() -> str:
        await trio.lowlevel.checkpoint()
        return "ok"

    async with limiter as entered:
        assert entered is limiter
    assert await decorated() == "ok"
    await limiter.acquire()
    await limiter.release()
    assert limiter.statistics().tokens == 0.0
    async with limiter:
        pass
    assert trio.current_time() == 1.0


def test_invalid_arguments() -> None:
    """rate and capacity are checked with exact messages."""
    with pytest.raises(ValueError, match=r"^rate must be > 0$"):
        TokenBucketRateLimiter(rate=0, capacity=1)
    with pytest.raises(ValueError, match=r"^capacity must be >= 1$"):
        TokenBucketRateLimiter(rate=1, capacity=0.5)
    with pytest.raises(ValueError, match=r"^rate must be finite$"):
        TokenBucketRateLimiter(rate=float("inf"), capacity=1)
    with pytest.raises(TypeError, match=r"^capacity must be a number, not str$"):
        TokenBucketRateLimiter(rate=1, capacity="2")  # type: ignore[arg-type]


def test_can_be_created_outside_trio() -> None:
    """Construction needs no running trio loop (e.g. at import time)."""
    limiter = TokenBucketRateLimiter(rate=5, capacity=10)
    assert (limiter.rate, limiter.capacity) == (5.0, 10.0)


@pytest.mark.parametrize("start", [0.0, 0.1, 12_345.678, 199_999.123])
@pytest.mark.parametrize(("rate", "capacity"), [(10, 20), (5, 10), (1000, 50), (3, 7)])
async def test_a_full_bucket_admits_exactly_capacity_at_once(
    autojump_clock: trio.testing.MockClock, start: float, rate: float, capacity: int
) -> None:
    """A burst is exactly `capacity`, whatever the rate and the clock's offset."""
    await trio.sleep(start)
    limiter = TokenBucketRateLimiter(rate=rate, capacity=capacity)
    for _ in range(capacity):
        limiter.acquire_nowait()
    with pytest.raises(trio.WouldBlock):
        limiter.acquire_nowait()


async def test_rate_finer_than_the_clock_still_bounds_a_burst(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A rate whose interval is below the clock's resolution never exceeds capacity."""
    await trio.sleep_until(200_000)
    limiter = TokenBucketRateLimiter(rate=1e12, capacity=5)
    for _ in range(5):
        limiter.acquire_nowait()
    with pytest.raises(trio.WouldBlock):
        limiter.acquire_nowait()
    await limiter.acquire()  # one clock tick later the bucket has refilled
    assert trio.current_time() > 200_000


def reference_admissions(
    rate: float, capacity: int, arrivals: list[float]
) -> list[Fraction]:
    """Admission times of a FIFO token bucket, in exact rational arithmetic."""
    exact_rate = Fraction(rate)
    tokens, stamp = Fraction(capacity), None
    previous = Fraction(0)
    admitted = []
    for arrival in arrivals:
        t = max(Fraction(arrival), previous)
        if stamp is not None:
            tokens = min(Fraction(capacity), tokens + (t - stamp) * exact_rate)
        if tokens < 1:
            t += (1 - tokens) / exact_rate
            tokens = Fraction(1)
        tokens -= 1
        stamp = previous = t
        admitted.append(t)
    return admitted


rates = st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.0, 10.0, 64.0, 1000.0])
arrivals = st.lists(
    st.tuples(st.integers(0, 40).map(lambda q: q / 8), st.integers(1, 6)),
    min_size=1,
    max_size=25,
)
offsets = st.sampled_from([0.0, 0.1, 12_345.678, 199_999.123])


@settings(max_examples=150, deadline=None)
@given(rate=rates, capacity=st.integers(1, 8), schedule=arrivals, offset=offsets)
def test_admissions_match_the_exact_model_and_the_window_bound(
    rate: float, capacity: int, schedule: list[tuple[float, int]], offset: float
) -> None:
    """Tasks are admitted in arrival order, when an exact token bucket would admit
    them, and no window of length T admits more than capacity + rate * T."""
    arrived: list[float] = []
    admitted: list[tuple[float, int]] = []

    async def main() -> None:
        await trio.sleep(offset)
        limiter = TokenBucketRateLimiter(rate=rate, capacity=capacity)

        async def one(i: int) -> None:
            await limiter.acquire()
            admitted.append((trio.current_time(), i))

        async with trio.open_nursery() as nursery:
            for gap, count in schedule:
                await trio.sleep(gap)
                for _ in range(count):
                    arrived.append(trio.current_time())
                    nursery.start_soon(one, len(arrived) - 1)
                    await trio.testing.wait_all_tasks_blocked()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))

    assert [i for _, i in admitted] == list(range(len(arrived)))
    times = [t for t, _ in admitted]
    expected = reference_admissions(rate, capacity, arrived)
    tolerance = 1e-9 * max(1.0, offset)
    for actual, exact in zip(times, expected, strict=True):
        assert abs(actual - float(exact)) <= tolerance
    for first in range(len(times)):
        for last in range(first, len(times)):
            window = times[last] - times[first]
            assert last - first + 1 <= capacity + rate * window + 1e-6
