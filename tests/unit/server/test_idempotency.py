"""TTLCache (LRU + TTL on trio time) and SingleFlight (one creation per key)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience.server._idempotency import SingleFlight, TTLCache


async def test_ttl_expires_exactly(autojump_clock: trio.testing.MockClock) -> None:
    """An entry lives exactly ttl seconds from when it was set."""
    cache: TTLCache[str, int] = TTLCache(max_size=10, ttl=5)
    cache.set("a", 1)
    await trio.sleep(4.5)
    assert cache.get("a") == 1  # reading does not extend the ttl
    await trio.sleep(0.5)
    assert cache.get("a") is None
    assert len(cache) == 0


async def test_lru_eviction(autojump_clock: trio.testing.MockClock) -> None:
    """Past max_size the least recently used entry goes first."""
    cache: TTLCache[str, int] = TTLCache(max_size=2, ttl=60)
    cache.set("a", 1)
    cache.set("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.set("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert len(cache) == 2


async def test_set_again_renews(autojump_clock: trio.testing.MockClock) -> None:
    """Setting a key again replaces its value and restarts its ttl."""
    cache: TTLCache[str, int] = TTLCache(max_size=2, ttl=2)
    cache.set("a", 1)
    await trio.sleep(1.5)
    cache.set("a", 2)
    await trio.sleep(1.5)
    assert cache.get("a") == 2


def test_cache_arguments() -> None:
    """max_size and ttl are checked."""
    with pytest.raises(ValueError, match=r"^max_size must be >= 1$"):
        TTLCache(max_size=0, ttl=1)
    with pytest.raises(ValueError, match=r"^ttl must be > 0$"):
        TTLCache(max_size=1, ttl=0)


async def test_concurrent_callers_share_one_creation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Callers arriving while a value is being made wait for it and get it too."""
    flight: SingleFlight[str, str] = SingleFlight(TTLCache(max_size=10, ttl=60))
    created = 0
    results: list[tuple[str, bool, float]] = []

    async def create() -> str:
        nonlocal created
        created += 1
        await trio.sleep(1)
        return f"value-{created}"

    async def ask(after: float) -> None:
        await trio.sleep(after)
        value, replayed = await flight.get_or_create("k", create)
        results.append((value, replayed, trio.current_time()))

    async with trio.open_nursery() as nursery:
        for after in (0, 0.25, 0.5, 2):
            nursery.start_soon(ask, after)
    assert created == 1
    assert sorted(results, key=lambda r: r[2]) == [
        ("value-1", False, 1.0),
        ("value-1", True, 1.0),
        ("value-1", True, 1.0),
        ("value-1", True, 2.0),
    ]


async def test_failed_creation_is_not_cached_and_a_waiter_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """If the first creation fails, a waiting caller runs its own."""
    flight: SingleFlight[str, str] = SingleFlight(TTLCache(max_size=10, ttl=60))

    async def broken() -> str:
        await trio.sleep(1)
        raise RuntimeError("boom")

    async def fine() -> str:
        await trio.sleep(1)
        return "fine"

    outcome: list[tuple[str, bool]] = []

    async def waiter() -> None:
        outcome.append(await flight.get_or_create("k", fine))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)  # starts second, below
        with pytest.raises(RuntimeError, match="boom"):
            await flight.get_or_create("k", broken)
    assert outcome == [("fine", False)]
    assert trio.current_time() == 2.0


async def test_cancelled_creation_hands_over(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancelled creator stores nothing and lets a waiter take over."""
    flight: SingleFlight[str, str] = SingleFlight(TTLCache(max_size=10, ttl=60))

    async def slow() -> str:
        await trio.sleep(10)
        return "slow"

    got: list[tuple[str, bool]] = []
    async with trio.open_nursery() as nursery:

        async def impatient() -> None:
            with trio.move_on_after(1):
                await flight.get_or_create("k", slow)

        nursery.start_soon(impatient)
        await trio.testing.wait_all_tasks_blocked()

        async def patient() -> None:
            got.append(await flight.get_or_create("k", slow))

        nursery.start_soon(patient)
    assert got == [("slow", False)]
    assert trio.current_time() == 11.0
