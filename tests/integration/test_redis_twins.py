"""The Redis twins of the token bucket and the circuit breaker, on a real Redis.

Cross-process behaviour is checked with real OS processes
(``_redis_twin_worker.py``, each running its own `trio.run`); they start together
on a Redis barrier (``INCR ready``, then the test pushes ``go``), never on a sleep.
Times here are real (the twins use the Redis clock), so timing assertions have a
tolerance on the slow side and none on the fast side: a limiter never admits early.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from trio_resilience import (
    AsyncRateLimiter,
    CircuitBreakerOpenError,
    CircuitState,
)
from trio_resilience.redis import (
    RedisCircuitBreaker,
    RedisConnection,
    RedisTokenBucketRateLimiter,
    RedisUnavailableError,
    open_redis,
    shared_connection,
)

from .conftest import RedisServer, start_redis

WORKER = Path(__file__).with_name("_redis_twin_worker.py")


# -- helpers ----------------------------------------------------------------------


def worker_command(*args: object) -> list[str]:
    return [sys.executable, str(WORKER), *map(str, args)]


async def run_worker(*args: object) -> dict[str, Any]:
    """Run one worker to its end; its JSON line."""
    done = await trio.run_process(
        worker_command(*args), capture_stdout=True, capture_stderr=True, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    result: dict[str, Any] = json.loads(done.stdout.decode().splitlines()[-1])
    return result


async def run_workers_together(
    url: str, count: int, *args: object, go: Callable[[], str] = lambda: "go"
) -> list[dict[str, Any]]:
    """Start ``count`` workers, release them at once when all are ready, collect."""
    results: list[dict[str, Any]] = []

    async def one() -> None:
        results.append(await run_worker(*args))

    redis = await shared_connection(url)
    async with trio.open_nursery() as nursery:
        for _ in range(count):
            nursery.start_soon(one)
        await poll_until(lambda: ready_count(redis, count), within=30)
        message = go()
        await redis.run(lambda client: client.rpush("go", [message] * count))
    return results


async def ready_count(redis: RedisConnection, count: int) -> bool:
    return int(await redis.run(lambda client: client.get("ready")) or 0) >= count


async def poll_until(
    condition: Callable[[], Awaitable[bool]], *, within: float = 10
) -> None:
    """Poll ``condition`` every 10 ms until it holds; fail after ``within`` s."""
    with trio.fail_after(within):
        while True:  # polled: nothing in Redis tells the test when it holds
            if await condition():
                return
            await trio.sleep(0.01)


async def state_is(breaker: RedisCircuitBreaker, state: CircuitState) -> bool:
    return await breaker.current_state() is state


# -- the rate limiter ---------------------------------------------------------------


async def test_three_processes_share_one_bucket(redis_url: str) -> None:
    """3 processes on one bucket (rate 100/s, burst 10) admit 200..210 in 2 s."""
    results = await run_workers_together(
        redis_url,
        3,
        "limiter",
        redis_url,
        "shared-bucket",
        4,
        go=lambda: repr(time.time() + 2.0),
    )
    counts = [result["admitted"] for result in results]
    print(f"admitted per process: {counts}, total {sum(counts)}")
    assert 200 <= sum(counts) <= 210
    assert all(count > 0 for count in counts)


async def test_reservations_are_spaced_one_interval_apart(redis_url: str) -> None:
    """Queued callers start 1/rate apart, in booking order, never early."""
    limiter = RedisTokenBucketRateLimiter(redis_url, "spaced", rate=50, capacity=1)
    admitted: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        admitted.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(one)
    admitted.sort()
    for i, at in enumerate(admitted):
        expected = admitted[0] + i / 50
        assert expected - 0.005 <= at <= expected + 0.05, (i, at - admitted[0])


async def test_a_burst_of_capacity_is_admitted_at_once(redis_url: str) -> None:
    """A full bucket admits ``capacity`` at once; the next caller waits 1/rate."""
    limiter = RedisTokenBucketRateLimiter(redis_url, "burst", rate=10, capacity=5)
    start = trio.current_time()
    for _ in range(5):
        await limiter.acquire()
    assert trio.current_time() - start < 0.05
    await limiter.acquire()
    assert 0.09 <= trio.current_time() - start < 0.2
    stats = await limiter.statistics()
    assert stats.rate == 10.0
    assert stats.capacity == 5.0
    assert stats.tokens < 1
    assert stats.waiting == 0


async def test_a_cancelled_waiter_gives_its_slot_back(redis_url: str) -> None:
    """A waiter cancelled while it sleeps frees its slot for the next caller."""
    limiter = RedisTokenBucketRateLimiter(redis_url, "refund", rate=10, capacity=1)
    redis = await shared_connection(redis_url)

    async def tat() -> bytes | None:
        return await redis.run(lambda client: client.get("refund"))

    await limiter.acquire()
    start = trio.current_time()
    first = await tat()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(limiter.acquire)

        async def booked() -> bool:
            return await tat() != first

        await poll_until(booked)  # its slot (0.1 s ahead) is booked: it sleeps
        assert (await limiter.statistics()).waiting == 1
        nursery.cancel_scope.cancel()
    assert await tat() == first  # the booking was undone
    await limiter.acquire()  # takes the given-back slot, not the one after it
    assert 0.05 <= trio.current_time() - start < 0.17


async def test_the_key_expires_when_the_bucket_is_full_again(redis_url: str) -> None:
    """The bucket's key lives only until the bucket would be full again."""
    limiter = RedisTokenBucketRateLimiter(redis_url, "expiring", rate=10, capacity=2)
    redis = await shared_connection(redis_url)
    await limiter.acquire()
    await limiter.acquire()
    ttl = await redis.run(lambda client: client.pttl("expiring"))
    assert 0 < ttl <= 200


def test_limiter_validation() -> None:
    """Bad arguments raise the in-memory bucket's exact errors."""
    url = "redis://127.0.0.1:1/0"
    with pytest.raises(ValueError, match=r"^rate must be > 0$"):
        RedisTokenBucketRateLimiter(url, "k", rate=0, capacity=1)
    with pytest.raises(ValueError, match=r"^capacity must be >= 1$"):
        RedisTokenBucketRateLimiter(url, "k", rate=1, capacity=0.5)
    with pytest.raises(ValueError, match=r"^rate must be finite$"):
        RedisTokenBucketRateLimiter(url, "k", rate=math.inf, capacity=1)
    with pytest.raises(TypeError, match=r"^rate must be a number, not str$"):
        RedisTokenBucketRateLimiter(url, "k", rate="1", capacity=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^key must not be empty$"):
        RedisTokenBucketRateLimiter(url, "", rate=1, capacity=1)
    with pytest.raises(TypeError, match=r"^url must be a str or a RedisConnection"):
        RedisTokenBucketRateLimiter(1, "k", rate=1, capacity=1)  # type: ignore[arg-type]
    limiter = RedisTokenBucketRateLimiter(url, "k", rate=1, capacity=1)
    with pytest.raises(
        TypeError, match=r"^RedisTokenBucketRateLimiter can only decorate async"
    ):
        limiter(lambda: None)  # type: ignore[arg-type, return-value]


async def test_limiter_usage_forms(redis_url: str) -> None:
    """async with, the decorator and acquire/release all take a token."""
    limiter = RedisTokenBucketRateLimiter(redis_url, "forms", rate=1, capacity=3)
    assert isinstance(limiter, AsyncRateLimiter)

    @limiter
    async def double(x: int) -> int:
        return 2 * x

    async with limiter as entered:
        assert entered is limiter
    assert await double(21) == 42
    await limiter.acquire()
    await limiter.release()
    assert (await limiter.statistics()).tokens < 0.1  # three taken, ~none refilled


async def test_limiter_on_a_connection_of_its_own(redis_url: str) -> None:
    """Given an open RedisConnection, the limiter uses it as it is."""
    async with open_redis(redis_url) as redis:
        limiter = RedisTokenBucketRateLimiter(redis, "own", rate=10, capacity=1)
        await limiter.acquire()
        assert await redis.run(lambda client: client.exists(["own"])) == 1


def test_a_module_level_limiter_serves_two_runs(redis_url: str) -> None:
    """One limiter, made outside any run, works in two consecutive trio.run calls;
    the bucket, being in Redis, carries over."""
    limiter = RedisTokenBucketRateLimiter(redis_url, "two-runs", rate=20, capacity=2)

    async def burst() -> None:
        await limiter.acquire()
        await limiter.acquire()

    async def next_one() -> float:
        start = trio.current_time()
        await limiter.acquire()
        return trio.current_time() - start

    trio.run(burst)
    assert trio.run(next_one) >= 0.02  # the burst of the first run was spent


@attrs.define
class OwnRedis:
    """A redis-server of one test's own, which the test may stop and start again."""

    directory: Path
    server: RedisServer

    def stop(self) -> None:
        self.server.process.terminate()
        self.server.process.wait(10)

    def start_again(self) -> None:
        self.server = start_redis(self.directory, self.server.port)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    own = OwnRedis(tmp_path, start_redis(tmp_path))
    try:
        yield own
    finally:
        if own.server.process.poll() is None:
            own.stop()


async def test_redis_stopped_raises_unavailable(own_redis: OwnRedis) -> None:
    """With Redis gone both twins raise RedisUnavailableError (nothing is admitted
    blind); once it is back they work again."""
    url = own_redis.server.url()
    limiter = RedisTokenBucketRateLimiter(url, "k", rate=100, capacity=10)
    breaker = RedisCircuitBreaker(url, "b")
    await limiter.acquire()
    async with breaker:
        pass
    await trio.to_thread.run_sync(own_redis.stop)
    with trio.fail_after(10):
        with pytest.raises(RedisUnavailableError):
            await limiter.acquire()
        with pytest.raises(RedisUnavailableError):
            await breaker.admit()
        with pytest.raises(RedisUnavailableError):
            await breaker.record_failure()
    await trio.to_thread.run_sync(own_redis.start_again)

    async def works_again() -> bool:
        try:
            await limiter.acquire()
            async with breaker:
                pass
        except RedisUnavailableError:
            return False
        return True

    await poll_until(works_again)


# -- the circuit breaker ------------------------------------------------------------


async def test_opened_in_one_process_rejects_in_another(redis_url: str) -> None:
    """Failures recorded by another process open the breaker here too."""
    result = await run_worker("fail", redis_url, "shared-breaker", 3)
    assert result == {"state": "open"}
    breaker = RedisCircuitBreaker(redis_url, "shared-breaker", failure_threshold=3)
    assert breaker.state is CircuitState.CLOSED  # nothing seen yet
    ran = False
    with pytest.raises(CircuitBreakerOpenError, match="Circuit breaker is OPEN") as e:
        async with breaker:
            ran = True
    assert not ran
    assert e.value.state is CircuitState.OPEN
    assert e.value.name == "shared-breaker"
    assert 0 < e.value.retry_after <= 30
    assert breaker.state is CircuitState.OPEN


async def test_one_probe_among_thirty_admissions_in_three_processes(
    redis_url: str,
) -> None:
    """30 concurrent half-open admissions in 3 processes admit exactly one probe."""
    breaker = RedisCircuitBreaker(
        redis_url, "probed", failure_threshold=3, recovery_timeout=0.2
    )
    redis = await shared_connection(redis_url)
    results: list[dict[str, Any]] = []

    async def one() -> None:
        results.append(await run_worker("probe", redis_url, "probed", 10, 30))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
        await poll_until(lambda: ready_count(redis, 3), within=30)
        for _ in range(3):
            await breaker.record_failure()
        await poll_until(lambda: state_is(breaker, CircuitState.HALF_OPEN))
        await redis.run(lambda client: client.rpush("go", ["go"] * 3))
    print(f"per process: {results}")
    assert sum(result["probe"] for result in results) == 1
    assert sum(result["rejected"] for result in results) == 29
    assert sum(result["closed"] for result in results) == 0
    assert await breaker.current_state() is CircuitState.CLOSED  # the probe succeeded
    stats = await breaker.statistics()
    assert stats.total_rejections == 29
    assert stats.total_successes == 1


async def open_then_half_open(breaker: RedisCircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        await breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    await poll_until(lambda: state_is(breaker, CircuitState.HALF_OPEN))


async def test_a_successful_probe_closes(redis_url: str) -> None:
    """After the recovery timeout one probe is admitted; its success closes."""
    breaker = RedisCircuitBreaker(
        redis_url, "recovers", failure_threshold=2, recovery_timeout=0.2
    )
    await open_then_half_open(breaker)
    async with breaker:
        with pytest.raises(CircuitBreakerOpenError, match=r"half-open, the probe is"):
            await breaker.admit()  # the one probe is out
    assert breaker.state is CircuitState.CLOSED
    stats = await breaker.statistics()
    assert stats.consecutive_failures == 0
    assert stats.half_open_calls == 0
    async with breaker:  # closed: everything passes
        pass


async def test_a_failed_probe_reopens(redis_url: str) -> None:
    """A probe that fails opens the breaker again for a full recovery timeout."""
    breaker = RedisCircuitBreaker(
        redis_url, "relapses", failure_threshold=2, recovery_timeout=0.3
    )
    await open_then_half_open(breaker)
    with pytest.raises(OSError, match="still down"):
        async with breaker:
            raise OSError("still down")
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitBreakerOpenError) as rejected:
        await breaker.admit()
    assert 0.2 < rejected.value.retry_after <= 0.3


async def test_a_cancelled_or_ignored_probe_frees_the_slot(redis_url: str) -> None:
    """A probe ended by cancellation or an ignored exception decides nothing and
    frees the slot at once (the release is shielded from the cancellation)."""
    breaker = RedisCircuitBreaker(
        redis_url,
        "undecided",
        failure_threshold=1,
        recovery_timeout=0.2,
        ignored_exception=KeyError,
    )
    await open_then_half_open(breaker)
    with trio.CancelScope() as scope:
        async with breaker:
            scope.cancel()
            await trio.sleep(10)
    assert scope.cancelled_caught
    with pytest.raises(KeyError):
        async with breaker:
            raise KeyError("not the dependency's fault")
    assert await breaker.current_state() is CircuitState.HALF_OPEN
    ticket = await breaker.admit()
    assert ticket.is_probe
    await ticket.settle()
    assert breaker.state is CircuitState.CLOSED


async def test_a_dead_probe_frees_the_slot_after_its_timeout(redis_url: str) -> None:
    """A probe whose process was killed stops blocking probes once its claim lapses."""
    name = "dead-probe"
    breaker = RedisCircuitBreaker(
        redis_url,
        name,
        failure_threshold=3,
        recovery_timeout=0.2,
        half_open_probe_timeout=0.5,
    )
    await open_then_half_open(breaker)
    process = await trio.lowlevel.open_process(
        worker_command("hold", redis_url, name), stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        with trio.fail_after(30):
            line = await process.stdout.receive_some()
        assert json.loads(line) == {"probe": True}
        killed_at = trio.current_time()
    finally:
        process.kill()
        await process.wait()
    with pytest.raises(CircuitBreakerOpenError) as rejected:
        await breaker.admit()
    assert rejected.value.state is CircuitState.HALF_OPEN
    assert 0 < rejected.value.retry_after <= 0.5
    tickets = []

    async def admitted() -> bool:
        try:
            tickets.append(await breaker.admit())
        except CircuitBreakerOpenError:
            return False
        return True

    await poll_until(admitted)
    assert tickets[0].is_probe
    assert trio.current_time() - killed_at >= rejected.value.retry_after - 0.01
    await tickets[0].settle()
    stats = await breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.expired_probes == 1


async def test_breaker_decorator(redis_url: str) -> None:
    """The decorator records each call; once open it rejects without calling."""
    breaker = RedisCircuitBreaker(redis_url, "decorated", failure_threshold=2)
    calls = 0

    @breaker
    async def flaky() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    for _ in range(2):
        with pytest.raises(ConnectionError):
            await flaky()
    with pytest.raises(CircuitBreakerOpenError):
        await flaky()
    assert calls == 2
    await breaker.reset()
    assert await breaker.current_state() is CircuitState.CLOSED


async def test_a_success_resets_the_failure_streak(redis_url: str) -> None:
    """Only consecutive failures count, as in memory."""
    breaker = RedisCircuitBreaker(redis_url, "streak", failure_threshold=3)
    for _ in range(2):
        await breaker.record_failure()
    await breaker.record_success()
    for _ in range(2):
        await breaker.record_failure()
    stats = await breaker.statistics()
    assert stats.state is CircuitState.CLOSED
    assert stats.consecutive_failures == 2
    await breaker.record_failure()
    assert breaker.state is CircuitState.OPEN


def test_a_module_level_breaker_serves_two_runs(redis_url: str) -> None:
    """One breaker, made outside any run, works in two trio.run calls; it opens in
    the first and the second sees it open, since the state is in Redis."""
    breaker = RedisCircuitBreaker(redis_url, "two-runs", failure_threshold=2)

    async def fail_twice() -> None:
        await breaker.record_failure()
        await breaker.record_failure()

    async def try_call() -> CircuitState:
        with pytest.raises(CircuitBreakerOpenError, match="Circuit breaker is OPEN"):
            async with breaker:
                pass
        return await breaker.current_state()

    trio.run(fail_twice)
    assert breaker.state is CircuitState.OPEN
    assert trio.run(try_call) is CircuitState.OPEN


def test_breaker_validation() -> None:
    """Bad arguments raise the in-memory breaker's exact errors."""
    url = "redis://127.0.0.1:1/0"
    with pytest.raises(ValueError, match=r"^failure_threshold must be >= 1$"):
        RedisCircuitBreaker(url, "b", failure_threshold=0)
    with pytest.raises(TypeError, match=r"^failure_threshold must be an int, not"):
        RedisCircuitBreaker(url, "b", failure_threshold=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^recovery_timeout must be >= 0$"):
        RedisCircuitBreaker(url, "b", recovery_timeout=-1)
    with pytest.raises(ValueError, match=r"^half_open_probe_timeout must be > 0$"):
        RedisCircuitBreaker(url, "b", half_open_probe_timeout=0)
    with pytest.raises(ValueError, match=r"^name must not be empty$"):
        RedisCircuitBreaker(url, "")
    with pytest.raises(TypeError, match=r"^expected_exception must be"):
        RedisCircuitBreaker(url, "b", expected_exception=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^RedisCircuitBreaker can only decorate"):
        RedisCircuitBreaker(url, "b")(lambda: None)  # type: ignore[arg-type, return-value]
