"""The server's Redis state one level down: `RedisFailureInjector` and
`RedisSingleFlight` against the session's redis-server, from several connections
(as several worker processes would hold)."""

from __future__ import annotations

import uuid

import pytest
import trio

from trio_resilience.redis import RedisConnection, open_redis
from trio_resilience.server._faults import FailureStatus
from trio_resilience.server._redis_state import (
    RedisFailureInjector,
    RedisSingleFlight,
    relay_completions,
)


async def test_count_mode_fails_exactly_n_across_connections(redis_url: str) -> None:
    async with open_redis(redis_url) as one, open_redis(redis_url) as two:
        injectors = [RedisFailureInjector(one), RedisFailureInjector(two)]
        await injectors[0].fail_next(5)
        fired: list[str | None] = []

        async def check(injector: RedisFailureInjector) -> None:
            rule = await injector.check("GET", "/msg", [])
            fired.append(None if rule is None else rule.id)

        async with trio.open_nursery() as nursery:
            for i in range(40):
                nursery.start_soon(check, injectors[i % 2])
        assert fired.count("fail-count") == 5
        assert fired.count(None) == 35
        assert await injectors[1].status() == FailureStatus(
            count_remaining=0,
            duration_remaining_seconds=0.0,
            failing=False,
            requests_seen=40,
            failures_injected=5,
        )
        assert await injectors[0].check("POST", "/msg", []) is None
        assert await injectors[0].check("GET", "/other", []) is None


async def test_duration_mode_runs_on_the_redis_clock(redis_url: str) -> None:
    async with open_redis(redis_url) as redis:
        faults = RedisFailureInjector(redis)
        await faults.fail_for(0.3)
        status = await faults.status()
        assert status.failing
        assert 0 < status.duration_remaining_seconds <= 0.3
        rule = await faults.check("GET", "/msg", [])
        assert rule is not None
        assert rule.id == "fail-duration"
        with trio.fail_after(5):
            while True:  # polled: the mode ends on Redis's clock, not trio's
                if await faults.check("GET", "/msg", []) is None:
                    break
                await trio.sleep(0.02)
        await faults.fail_next(2)
        await faults.reset()
        assert (await faults.status()).count_remaining == 0
        with pytest.raises(ValueError, match="count must be between 0 and 1000000"):
            await faults.fail_next(-1)


async def new_id() -> str:
    await trio.sleep(0.01)
    return str(uuid.uuid4())


async def test_concurrent_callers_on_two_connections_share_one_value(
    redis_url: str,
) -> None:
    async with (
        open_redis(redis_url) as one,
        open_redis(redis_url) as two,
        trio.open_nursery() as relays,
    ):
        flights = [RedisSingleFlight(c, ttl=60) for c in (one, two)]
        for connection, flight in zip((one, two), flights, strict=True):
            relays.start_soon(relay_completions, connection, flight)
        results: list[tuple[str, bool]] = []

        async def ask(flight: RedisSingleFlight) -> None:
            results.append(await flight.get_or_create("key", new_id))

        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(ask, flights[i % 2])
        assert len({value for value, _ in results}) == 1
        assert sorted(replayed for _, replayed in results) == [False] + [True] * 49
        relays.cancel_scope.cancel()


async def test_a_failed_creation_leaves_the_key_free(redis_url: str) -> None:
    async with open_redis(redis_url) as redis:
        flight = RedisSingleFlight(redis, ttl=60)

        async def fail() -> str:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            await flight.get_or_create("k", fail)
        with trio.fail_after(1):  # not waiting for a lease to run out
            value, replayed = await flight.get_or_create("k", new_id)
        assert not replayed
        assert await flight.get_or_create("k", new_id) == (value, True)


async def test_a_cancelled_owner_releases_its_claim(redis_url: str) -> None:
    async with open_redis(redis_url) as redis:
        flight = RedisSingleFlight(redis, ttl=60)
        with trio.move_on_after(0.05):
            await flight.get_or_create("k", trio.sleep_forever)  # type: ignore[arg-type]
        with trio.fail_after(1):
            _, replayed = await flight.get_or_create("k", new_id)
        assert not replayed


async def test_a_dead_owner_is_taken_over_when_its_lease_ends(redis_url: str) -> None:
    """An owner that died (its claim left in Redis, never renewed): a waiter takes
    over once the lease runs out, and creates the value itself."""
    async with open_redis(redis_url) as redis:
        flight = RedisSingleFlight(redis, ttl=60, lease=0.3)
        await redis.run(
            lambda client: client.set("tr:msg:lock:k", "dead-owner", px=300)
        )
        start = trio.current_time()
        with trio.fail_after(5):
            value, replayed = await flight.get_or_create("k", new_id)
        assert not replayed
        assert 0.2 <= trio.current_time() - start < 2
        assert await flight.get_or_create("k", new_id) == (value, True)


async def test_a_long_creation_keeps_its_claim(redis_url: str) -> None:
    """An owner working for 3 leases keeps the claim (renewed): a second caller
    waits and gets its value instead of creating another."""
    async with open_redis(redis_url) as one, open_redis(redis_url) as two:
        owner = RedisSingleFlight(one, ttl=60, lease=0.2)
        waiter = RedisSingleFlight(two, ttl=60, lease=0.2)
        results: list[tuple[str, bool]] = []

        async def slow() -> str:
            await trio.sleep(0.6)
            return "slow-value"

        async def ask_owner() -> None:
            results.append(await owner.get_or_create("k", slow))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_owner)
            await trio.sleep(0.05)
            results.append(await waiter.get_or_create("k", new_id))
        assert sorted(results) == [("slow-value", False), ("slow-value", True)]


def test_the_connection_url_is_checked() -> None:
    with pytest.raises(ValueError, match="not a Redis URL"):
        RedisConnection("http://127.0.0.1:6380")
