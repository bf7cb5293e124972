"""Run-bound time and reusable retry loops: the figures for issue 9, items 10 and 11.

Prints, for the ``trio_resilience`` the current import resolves to:

* item 10, token bucket: how many seconds ``TokenBucketRateLimiter(rate=1,
  capacity=5)``, drained in a first `trio.run`, makes its first ``acquire()`` of a
  second run wait. The second run is always on ``MockClock(autojump_threshold=0)`` (so
  the wait is measured in virtual seconds, without waiting); the first is on the real
  clock (trio's real clock starts at a random offset, so this figure changes from run
  to run) and, for a repeatable figure, on a MockClock after 1000 virtual seconds;
* item 10, breaker: ``CircuitBreaker(failure_threshold=1, recovery_timeout=1)`` opened
  in a first run (the same two clocks): its state and ``seconds_until_half_open``
  2 s (virtual) into a second run;
* item 11: how many times a block fails-once-then-succeeds runs in a first and a
  second ``async for`` over one ``retry_context(...)`` object.

Run ``python benchmarks/lifecycle_primitives.py``; for the code before issue 9,
``PYTHONPATH=/tmp/before python benchmarks/lifecycle_primitives.py``. No assertions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing

import trio_resilience
from trio_resilience import (
    Backoff,
    CircuitBreaker,
    TokenBucketRateLimiter,
    retry_context,
)


def run_virtual(fn: Callable[[], Awaitable[Any]]) -> Any:
    return trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0))


def first_run(real: bool, fn: Callable[[], Awaitable[Any]]) -> None:
    if real:
        trio.run(fn)
    else:

        async def late() -> None:
            await trio.sleep(1000)
            await fn()

        run_virtual(late)


def bucket_wait(real: bool) -> float:
    bucket = TokenBucketRateLimiter(rate=1, capacity=5)

    async def drain() -> None:
        for _ in range(5):
            await bucket.acquire()

    async def measure() -> float:
        start = trio.current_time()
        await bucket.acquire()
        return trio.current_time() - start

    first_run(real, drain)
    return float(run_virtual(measure))


def breaker_later(real: bool) -> tuple[str, float]:
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1)

    async def open_it() -> None:
        try:
            async with breaker:
                raise ConnectionError
        except ConnectionError:
            pass

    async def measure() -> tuple[str, float]:
        await trio.sleep(2)
        stats = breaker.statistics()
        return stats.state.name, stats.seconds_until_half_open

    first_run(real, open_it)
    return run_virtual(measure)  # type: ignore[no-any-return]


def retry_context_runs() -> list[int]:
    attempts = retry_context(
        on=ValueError, attempts=3, backoff=Backoff(initial=0.1, jitter=False)
    )

    async def loop() -> int:
        runs = 0
        async for attempt in attempts:
            with attempt:
                runs += 1
                if runs == 1:
                    raise ValueError("fails once")
        return runs

    return [run_virtual(loop), run_virtual(loop)]


def main() -> None:
    print(f"trio_resilience from {trio_resilience.__file__}")
    for real, label in ((True, "real clock"), (False, "MockClock at t=1000")):
        print(
            f"item 10: drained TokenBucketRateLimiter(rate=1, capacity=5), first run "
            f"on {label}: first acquire of the next run waits "
            f"{bucket_wait(real):,.3f} s (virtual)"
        )
    for real, label in ((True, "real clock"), (False, "MockClock at t=1000")):
        state, remaining = breaker_later(real)
        print(
            f"item 10: CircuitBreaker(recovery_timeout=1) opened in a run on {label}: "
            f"2 s into the next run it is {state}, {remaining:,.3f} s to HALF_OPEN"
        )
    first, second = retry_context_runs()
    print(
        f"item 11: one retry_context object, block fails once then succeeds: "
        f"first async for runs it {first} times, the second {second} times"
    )


if __name__ == "__main__":
    main()
