"""CircuitBreaker(window=SlidingWindow(...)): rate mode, resilience4j's semantics.

The cases follow resilience4j's CircuitBreakerStateMachineTest and
SlidingTimeWindowMetricsTest: the minimum number of calls, the failure-rate and
slow-call thresholds, count and time windows, the half-open probes deciding
together, and a fresh window after closing. Virtual time throughout.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience import CircuitBreaker, CircuitState, SlidingWindow


class Boom(Exception):
    pass


async def call(breaker: CircuitBreaker, fails: bool, takes: float = 0.0) -> None:
    """One guarded call that takes ``takes`` seconds and fails or not (a
    cancellation settles it as cancelled)."""
    ticket = breaker.admit_nowait()
    try:
        await trio.sleep(takes)
    except BaseException as exc:
        ticket.settle(exc)
        raise
    ticket.settle(Boom() if fails else None)


def rate_breaker(**window: object) -> CircuitBreaker:
    return CircuitBreaker(
        recovery_timeout=10,
        half_open_max_calls=3,
        window=SlidingWindow(**window),  # type: ignore[arg-type]
    )


async def test_no_rate_below_the_minimum_number_of_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """minimum 5: four failures leave it CLOSED (no rate yet); the fifth opens."""
    breaker = rate_breaker(size=10, minimum_number_of_calls=5)
    for _ in range(4):
        await call(breaker, fails=True)
    stats = breaker.statistics()
    assert (stats.state, stats.window_calls, stats.failure_rate) == (
        CircuitState.CLOSED,
        4,
        None,
    )
    await call(breaker, fails=True)
    assert breaker.state is CircuitState.OPEN


async def test_opens_at_the_failure_rate_threshold(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Count window of 5, threshold 50%: s s s f f is 40%, CLOSED; the next failure
    pushes the oldest success out: s s f f f, 60%, OPEN."""
    breaker = rate_breaker(size=5, minimum_number_of_calls=5)
    for fails in (False, False, False, True, True):
        await call(breaker, fails)
    assert breaker.statistics().failure_rate == 40.0
    assert breaker.state is CircuitState.CLOSED
    await call(breaker, fails=True)
    assert breaker.state is CircuitState.OPEN


async def test_a_service_failing_40_percent_trips_the_rate_not_the_streak(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every fifth call passes, then two fail, ...: 40% failures, never two in a
    row. The consecutive mode (threshold 3) stays CLOSED for 1,000 calls; a 40%
    threshold over 100 calls opens once the window is full."""
    streak = CircuitBreaker(failure_threshold=3)
    rate = CircuitBreaker(window=SlidingWindow(failure_rate_threshold=40))
    pattern = [False, True, False, True, False]
    for n in range(1000):
        fails = pattern[n % 5]
        await call(streak, fails)
        if rate.state is CircuitState.CLOSED:
            await call(rate, fails)
            opened_after = n + 1
    assert streak.state is CircuitState.CLOSED
    assert rate.state is CircuitState.OPEN
    assert opened_after == 100


async def test_slow_calls_open_it_at_their_threshold(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Calls of 2 s or more are slow; at 50% slow calls (all succeeding) it opens."""
    breaker = rate_breaker(
        size=4,
        minimum_number_of_calls=4,
        slow_call_duration=2,
        slow_call_rate_threshold=50,
    )
    for takes in (0.1, 2.0, 0.1):
        await call(breaker, fails=False, takes=takes)
    assert breaker.statistics().slow_call_rate is None  # 3 calls < minimum
    await call(breaker, fails=False, takes=1.99)
    assert breaker.statistics().slow_call_rate == 25.0
    await call(breaker, fails=False, takes=2.5)
    assert breaker.state is CircuitState.OPEN


async def test_a_time_window_forgets_calls_older_than_its_size(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Time window of 10 s in 1 s buckets: four failures at t=0 are gone at t=10,
    so four successes then make 0%, and a fifth call cannot reach 50%."""
    breaker = rate_breaker(size=10, kind="time", minimum_number_of_calls=5)
    for _ in range(4):
        await call(breaker, fails=True)
    await trio.sleep(9.5)
    assert breaker.statistics().window_calls == 4
    await trio.sleep(0.5)
    assert breaker.statistics().window_calls == 0
    for _ in range(4):
        await call(breaker, fails=False)
    await call(breaker, fails=True)
    stats = breaker.statistics()
    assert (stats.state, stats.failure_rate) == (CircuitState.CLOSED, 20.0)


@pytest.mark.parametrize(
    ("probe_failures", "then"),
    [(1, CircuitState.CLOSED), (2, CircuitState.OPEN)],
)
async def test_the_half_open_probes_decide_together(
    autojump_clock: trio.testing.MockClock,
    probe_failures: int,
    then: CircuitState,
) -> None:
    """Three probes: one failure in three (33%) closes it, two (67%) reopen it;
    nothing is decided before the third has settled."""
    breaker = rate_breaker(size=2, minimum_number_of_calls=2)
    await call(breaker, fails=True)
    await call(breaker, fails=True)
    await trio.sleep(10)
    assert breaker.state is CircuitState.HALF_OPEN
    tickets = [breaker.admit_nowait() for _ in range(3)]
    for n, ticket in enumerate(tickets):
        assert breaker.state is CircuitState.HALF_OPEN
        ticket.settle(Boom() if n < probe_failures else None)
    assert breaker.state is then


async def test_closing_starts_an_empty_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After recovering, the failures that opened it count no more."""
    breaker = CircuitBreaker(
        recovery_timeout=1,
        window=SlidingWindow(size=4, minimum_number_of_calls=4),
    )
    for _ in range(4):
        await call(breaker, fails=True)
    await trio.sleep(1)
    await call(breaker, fails=False)  # the one probe: CLOSED
    stats = breaker.statistics()
    assert (stats.state, stats.window_calls) == (CircuitState.CLOSED, 0)
    for fails in (True, False, False, False):
        await call(breaker, fails)
    assert breaker.statistics().failure_rate == 25.0


async def test_cancelled_and_ignored_calls_count_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    breaker = CircuitBreaker(
        ignored_exception=KeyError, window=SlidingWindow(minimum_number_of_calls=1)
    )
    breaker.admit_nowait().settle(KeyError("not sent"))
    with trio.CancelScope() as scope:
        scope.cancel()
        await call(breaker, fails=False, takes=1)
    assert scope.cancelled_caught
    await call(breaker, fails=True)
    stats = breaker.statistics()
    assert (stats.window_calls, stats.failure_rate) == (1, 100.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, r"^size must be >= 1$"),
        ({"kind": "sliding"}, r"^kind must be 'count' or 'time', not 'sliding'$"),
        ({"failure_rate_threshold": 0}, r"^failure_rate_threshold must be > 0$"),
        ({"failure_rate_threshold": 101}, r"^failure_rate_threshold must be <= 100$"),
        ({"slow_call_duration": 0}, r"^slow_call_duration must be > 0$"),
        ({"minimum_number_of_calls": 0}, r"^minimum_number_of_calls must be >= 1$"),
    ],
)
def test_bad_windows_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SlidingWindow(**kwargs)  # type: ignore[arg-type]
