"""The tests' own Redis, and the Redis client (coredis) on Trio (issue 12, first step).

The session starts one ``redis-server`` on a free port in a temporary directory
(`redis_server` in conftest.py); `redis_url` gives each test database 0 emptied.
These tests pin what the state backend will build on: the fixture's isolation, and
coredis working under `trio.run`, including a pool that runs dry while commands
waiting for a connection are cancelled.
"""

from __future__ import annotations

import coredis
import pytest
import trio

from .conftest import RedisServer


def client(url: str, **options: int) -> coredis.Redis[bytes]:
    return coredis.Redis.from_url(url, **options)


def test_the_session_redis_is_its_own(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    assert redis_server.process.poll() is None


@pytest.mark.parametrize("run", [1, 2])
async def test_each_test_starts_with_an_empty_database(
    run: int, redis_url: str
) -> None:
    async with client(redis_url) as redis:
        assert await redis.dbsize() == 0
        await redis.set(f"left-by-{run}", "x")


async def test_commands_and_scripts_run_on_trio(redis_url: str) -> None:
    async with client(redis_url) as redis:
        await redis.set("greeting", "hello")
        assert await redis.get("greeting") == b"hello"
        script = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
        assert await redis.eval(script, keys=["n"], args=[3]) == 3
        assert await redis.eval(script, keys=["n"], args=[4]) == 7


async def test_cancelled_waiters_for_a_connection_leave_the_pool_usable(
    redis_url: str,
) -> None:
    """Both connections busy, 100 commands waiting for one are cancelled; the next
    command still gets a connection (a pool that kept cancelled waiters would hang)."""
    async with client(redis_url, max_connections=2) as redis:
        await redis.set("k", "v")

        async def hold() -> None:  # a blocking pop: a connection busy for 1 s
            await redis.blpop(["never"], 1)

        async def wait() -> None:
            await redis.get("k")

        async with trio.open_nursery() as holders:
            for _ in range(2):
                holders.start_soon(hold)
            await trio.sleep(0.1)
            with trio.move_on_after(0.2):
                async with trio.open_nursery() as waiters:
                    for _ in range(100):
                        waiters.start_soon(wait)
        with trio.fail_after(5):
            assert await redis.get("k") == b"v"
