"""Failure containment and single flight: the figures for issue 9, items 6 and 9.

Prints, for the ``trio_resilience`` the current import resolves to (virtual time):

* item 6: what a `JobQueue` does with a handler whose own nursery raises a group
  holding ``Cancelled`` at its timeout (one child turns its cancellation into an
  error): whether the queue crashes, the job's status and error, and whether a job
  submitted after it still runs;
* item 9: out of 300 seeded runs of `SingleFlight` with ``cache_max_size=1`` (8 keys,
  each asked by 2..6 concurrent callers while its value is being made), in how many
  one key handed out two different UUIDs.

Run ``python benchmarks/lifecycle_jobs.py``; for the code before issue 9,
``PYTHONPATH=/tmp/before python benchmarks/lifecycle_jobs.py``. No assertions.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

import trio
import trio.testing

import trio_resilience
from trio_resilience.jobs import HandlerRegistry, JobContext, JobQueue

try:
    from trio_resilience.server._idempotency import SingleFlight, TTLCache
except ImportError:  # the tree before issue 9 had public module names
    from trio_resilience.server.idempotency import (  # type: ignore[no-redef]
        SingleFlight,
        TTLCache,
    )

RUNS = 300
KEYS = 8


def run_on_virtual_time(main: Any) -> Any:
    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


async def group_with_cancelled_handler() -> str:
    registry = HandlerRegistry()

    @registry.handler("nursery")
    async def nursery_handler(payload: dict[str, Any], ctx: JobContext) -> None:
        async def turns_cancel_into_error() -> None:
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                raise RuntimeError("cleanup failed") from None

        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(turns_cancel_into_error)

    @registry.handler("quick")
    async def quick(payload: dict[str, Any], ctx: JobContext) -> str:
        await trio.sleep(1)
        return "done"

    queue = JobQueue(registry, workers=1, job_timeout=2)
    outcome = "queue kept running"
    try:
        async with queue:
            bad = await queue.submit("nursery")
            good = await queue.submit("quick")
            with trio.move_on_after(10):
                await queue.wait(good)
    except Exception as exc:  # the figure is what escapes (an ExceptionGroup)
        outcome = f"queue crashed with {type(exc).__name__}"
    bad_job, good_job = queue.get(bad), queue.get(good)
    return (
        f"{outcome}; the job: {bad_job.status.value} ({bad_job.error!r}); "
        f"the job after it: {good_job.status.value}"
    )


async def single_flight_run(seed: int) -> bool:
    """One seeded run; True if some key handed out more than one value."""
    rng = random.Random(seed)
    flight: SingleFlight[str, str] = SingleFlight(TTLCache(max_size=1, ttl=300))
    values: dict[str, set[str]] = {}

    async def ask(key: str, at: float, delay: float) -> None:
        async def create() -> str:
            await trio.sleep(delay)
            return str(uuid.uuid4())

        await trio.sleep(at)
        value, _ = await flight.get_or_create(key, create)
        values.setdefault(key, set()).add(value)

    async with trio.open_nursery() as nursery:
        for n in range(KEYS):
            start = rng.randint(0, 20) / 1000
            delay = rng.randint(5, 30) / 1000
            nursery.start_soon(ask, f"key-{n}", start, delay)
            # duplicates arrive while the first caller's value is being made
            for _ in range(rng.randint(1, 5)):
                later = start + rng.randrange(0, int(delay * 1000)) / 1000
                nursery.start_soon(ask, f"key-{n}", later, delay)
    return any(len(found) > 1 for found in values.values())


def main() -> None:
    print("tree:", Path(trio_resilience.__file__).parent.parent)
    print("item 6:", run_on_virtual_time(group_with_cancelled_handler))
    split = sum(
        run_on_virtual_time(lambda seed=seed: single_flight_run(seed))
        for seed in range(RUNS)
    )
    print(f"item 9: {split} of {RUNS} seeded runs gave one request id two UUIDs")


if __name__ == "__main__":
    main()
