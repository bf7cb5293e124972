"""PerKeyRateLimiter: independent keys, exact idle expiry, bounded memory, lifetime."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience import (
    PerKeyRateLimiter,
    SemaphoreRateLimiter,
    TokenBucketRateLimiter,
)


def one_at_a_time() -> SemaphoreRateLimiter:
    return SemaphoreRateLimiter(1)


async def settle() -> None:
    """Let the cleanup task react to the current time before asserting."""
    await trio.testing.wait_all_tasks_blocked()


async def test_keys_are_limited_independently(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Same key: one at a time; different keys: in parallel."""
    finished: dict[str, list[float]] = {"a": [], "b": []}

    async with PerKeyRateLimiter(one_at_a_time, idle_timeout=60) as per_key:

        async def job(key: str) -> None:
            async with per_key.limit(key):
                await trio.sleep(1)
            finished[key].append(trio.current_time())

        async with trio.open_nursery() as nursery:
            for key in ("a", "a", "a", "b", "b"):
                nursery.start_soon(job, key)
        assert len(per_key) == 2
    assert finished == {"a": [1.0, 2.0, 3.0], "b": [1.0, 2.0]}


async def test_idle_key_dropped_exactly_after_idle_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A key is kept for idle_timeout seconds after its last use, then dropped."""
    async with PerKeyRateLimiter(one_at_a_time, idle_timeout=10) as per_key:
        async with per_key.limit("k"):
            await trio.sleep(3)
        assert "k" in per_key
        await trio.sleep(9.75)
        await settle()
        assert len(per_key) == 1
        await trio.sleep(0.25)
        await settle()
        assert trio.current_time() == 13.0
        assert len(per_key) == 0
        assert "k" not in per_key


async def test_reuse_restarts_the_idle_timer_and_keeps_the_limiter(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Using a key again before it expires keeps its limiter and restarts its timer."""
    async with PerKeyRateLimiter(one_at_a_time, idle_timeout=10) as per_key:
        async with per_key.limit("k") as first:
            pass
        await trio.sleep(8)
        async with per_key.limit("k") as second:
            pass
        assert second is first
        await trio.sleep(9)
        await settle()
        assert "k" in per_key
        await trio.sleep(1)
        await settle()
        assert "k" not in per_key


async def test_key_in_use_or_awaited_is_never_dropped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Holders and waiters keep their key alive however long they take."""
    async with PerKeyRateLimiter(one_at_a_time, idle_timeout=1) as per_key:

        async def hold(seconds: float) -> None:
            async with per_key.limit("busy"):
                await trio.sleep(seconds)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold, 50)
            await settle()
            nursery.start_soon(hold, 50)  # waits 50 s for the first holder
            await trio.sleep(99)
            await settle()
            assert "busy" in per_key
        assert trio.current_time() == 100.0
        await trio.sleep(1)
        await settle()
        assert len(per_key) == 0


async def test_cancelled_waiter_releases_its_hold_on_the_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A waiter cancelled before acquiring does not keep its key alive."""
    async with PerKeyRateLimiter(one_at_a_time, idle_timeout=5) as per_key:

        async def impatient() -> None:
            with trio.move_on_after(1):
                async with per_key.limit("k"):
                    pytest.fail("entered a held key")

        async with per_key.limit("k"), trio.open_nursery() as nursery:
            nursery.start_soon(impatient)
        assert trio.current_time() == 1.0
        await trio.sleep(5)
        await settle()
        assert len(per_key) == 0


async def test_memory_stays_bounded_by_recent_keys(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With a new key every second, only the last idle_timeout seconds' keys remain."""
    async with PerKeyRateLimiter(
        lambda: TokenBucketRateLimiter(rate=1, capacity=1), idle_timeout=30
    ) as per_key:
        sizes = []
        for i in range(1_000):
            async with per_key.limit(i):
                pass
            await trio.sleep(1)
            await settle()
            sizes.append(len(per_key))
        # at time T the keys used at T-29 .. T-1 are alive; key T-30 expired at T
        assert max(sizes) == 29
        assert sizes[-1] == 29


async def test_acquire_release_and_decorator(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """acquire(key)/release(key) and decorator(key_func) use the key's limiter."""
    async with PerKeyRateLimiter(one_at_a_time, idle_timeout=5) as per_key:
        await per_key.acquire("x")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(per_key.acquire, "x")
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        await per_key.release("x")
        with pytest.raises(RuntimeError, match=r"^release\('x'\) without a matching"):
            await per_key.release("x")

        @per_key.decorator(key_func=lambda user, amount: user)
        async def pay(user: str, amount: int) -> int:
            await trio.sleep(1)
            return amount

        results: list[int] = []

        async def call(user: str, amount: int) -> None:
            results.append(await pay(user, amount))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "ann", 1)
            nursery.start_soon(call, "ann", 2)
            nursery.start_soon(call, "bob", 3)
        assert sorted(results) == [1, 2, 3]
        assert trio.current_time() == 3.0  # 1 s cancelled wait + two "ann" calls


async def test_unusable_outside_its_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Using it before or after its async with block raises a clear RuntimeError."""
    per_key = PerKeyRateLimiter(one_at_a_time)
    message = r"^PerKeyRateLimiter must be used inside 'async with"
    with pytest.raises(RuntimeError, match=message):
        async with per_key.limit("k"):
            pass
    async with per_key:
        async with per_key.limit("k"):
            pass
        with pytest.raises(
            RuntimeError, match=r"^this PerKeyRateLimiter is already open$"
        ):
            async with per_key:
                pass
    with pytest.raises(RuntimeError, match=message):
        await per_key.acquire("k")
    assert len(per_key) == 0


async def test_no_task_left_behind(autojump_clock: trio.testing.MockClock) -> None:
    """Its cleanup task runs in a nursery that is gone when the block exits."""
    me = trio.lowlevel.current_task()
    before = list(me.child_nurseries)
    async with PerKeyRateLimiter(one_at_a_time, idle_timeout=5) as per_key:
        (nursery,) = set(me.child_nurseries) - set(before)
        assert len(nursery.child_tasks) == 1
        async with per_key.limit("k"):
            pass
    assert me.child_nurseries == before


async def test_exception_in_the_block_propagates_and_closes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An error inside the block propagates unchanged and the nursery closes."""
    me = trio.lowlevel.current_task()
    before = list(me.child_nurseries)
    with pytest.raises(KeyError, match="boom"):
        async with PerKeyRateLimiter(one_at_a_time):
            raise KeyError("boom")
    assert me.child_nurseries == before


async def test_cancellation_of_the_block_is_not_swallowed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling the enclosing scope cancels the block and nothing else runs."""
    with trio.move_on_after(2) as scope:
        async with PerKeyRateLimiter(one_at_a_time) as per_key, per_key.limit("k"):
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert trio.current_time() == 2.0


def test_invalid_arguments() -> None:
    """factory and idle_timeout are checked with exact messages."""
    with pytest.raises(TypeError, match=r"^factory must be callable$"):
        PerKeyRateLimiter(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^idle_timeout must be > 0$"):
        PerKeyRateLimiter(one_at_a_time, idle_timeout=0)
    with pytest.raises(TypeError, match=r"^key_func must be callable$"):
        PerKeyRateLimiter(one_at_a_time).decorator(key_func=3)  # type: ignore[arg-type]
