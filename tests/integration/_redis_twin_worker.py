"""One OS process of the Redis twins' tests: ``python _redis_twin_worker.py MODE ...``.

The limiter and the breaker are made at module level, before `trio.run`, as a user's
module would make them. Workers that must start together announce themselves with
``INCR ready`` and wait for the test's ``go`` (a blocking ``BLPOP``); each prints one
JSON line with what it saw.

Modes::

    limiter URL KEY TASKS         acquire in TASKS tasks until the deadline in `go`
    fail URL NAME THRESHOLD       record THRESHOLD failures
    probe URL NAME TASKS TOTAL    TASKS concurrent admissions; the probe settles
                                  (success) once TOTAL admissions were attempted
    hold URL NAME                 admit one call as the probe, print it, never settle
"""

from __future__ import annotations

import json
import sys
import time

import trio

from trio_resilience import CircuitBreakerOpenError
from trio_resilience.redis import (
    RedisCircuitBreaker,
    RedisTokenBucketRateLimiter,
    shared_connection,
)

MODE, URL, NAME = sys.argv[1:4]
EXTRA = [int(word) for word in sys.argv[4:]]

LIMITER = RedisTokenBucketRateLimiter(URL, NAME, rate=100, capacity=10)
BREAKER = RedisCircuitBreaker(
    URL,
    NAME,
    failure_threshold=EXTRA[0] if MODE == "fail" else 3,
    recovery_timeout=0.2,
    half_open_probe_timeout=30.0 if MODE == "probe" else 0.5,
)


def report(**values: object) -> None:
    print(json.dumps(values), flush=True)


async def wait_for_go() -> bytes:
    redis = await shared_connection(URL)
    await redis.run(lambda client: client.incr("ready"))
    popped = await redis.run(lambda client: client.blpop(["go"], timeout=30))
    assert popped is not None, "no go within 30 s"
    return popped[1]


async def limiter(tasks: int) -> None:
    ends_at = float(await wait_for_go())  # wall clock: the Redis server's clock too
    deadline = trio.current_time() + (ends_at - time.time())
    admitted = 0

    async def run() -> None:
        nonlocal admitted
        while True:
            with trio.move_on_at(deadline) as scope:
                await LIMITER.acquire()
            if scope.cancelled_caught or trio.current_time() >= deadline:
                return
            admitted += 1

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(run)
    report(admitted=admitted)


async def fail() -> None:
    for _ in range(BREAKER.failure_threshold):
        await BREAKER.record_failure()
    report(state=BREAKER.state.value)


async def probe(tasks: int, total: int) -> None:
    await wait_for_go()
    redis = await shared_connection(URL)
    seen = {"probe": 0, "closed": 0, "rejected": 0}

    async def attempt() -> None:
        try:
            ticket = await BREAKER.admit()
        except CircuitBreakerOpenError:
            seen["rejected"] += 1
            await redis.run(lambda client: client.incr("attempts"))
            return
        seen["probe" if ticket.is_probe else "closed"] += 1
        await redis.run(lambda client: client.incr("attempts"))
        with trio.fail_after(20):  # hold the probe until every admission was tried
            while True:  # polled: other processes' attempts signal nothing here
                if int(await redis.run(lambda c: c.get("attempts")) or 0) >= total:
                    break
                await trio.sleep(0.005)
        await ticket.settle()

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(attempt)
    report(**seen)


async def hold() -> None:
    ticket = await BREAKER.admit()
    report(probe=ticket.is_probe)
    await trio.sleep_forever()


async def main() -> None:
    if MODE == "limiter":
        await limiter(*EXTRA)
    elif MODE == "fail":
        await fail()
    elif MODE == "probe":
        await probe(*EXTRA)
    elif MODE == "hold":
        await hold()
    else:
        raise SystemExit(f"unknown mode {MODE!r}")


if __name__ == "__main__":
    trio.run(main)
