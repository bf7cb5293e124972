"""TTLCache (LRU + TTL on trio time) and SingleFlight (one creation per key)."""

from __future__ import annotations

import random

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


async def test_waiters_get_the_owners_value_even_if_it_was_evicted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Waiters get the owner's value even when a one-entry cache evicted it."""
    flight: SingleFlight[str, str] = SingleFlight(TTLCache(max_size=1, ttl=60))
    created: list[str] = []
    got: dict[str, list[tuple[str, bool]]] = {"a": [], "b": []}

    async def ask(key: str) -> None:
        async def create() -> str:
            await trio.sleep(1)
            created.append(key)
            return f"{key}-{len(created)}"

        got[key].append(await flight.get_or_create(key, create))

    async with trio.open_nursery() as nursery:
        for key in ("a", "b", "a", "b", "a"):
            nursery.start_soon(ask, key)
    assert sorted(created) == ["a", "b"]
    for key, answers in got.items():
        assert len({value for value, _ in answers}) == 1, key
        assert sorted(replayed for _, replayed in answers) == [
            False,
            *[True] * (len(answers) - 1),
        ]
    assert trio.current_time() == 1.0


async def crowded_run(rng: random.Random) -> tuple[dict[str, set[str]], dict[str, int]]:
    """8 keys in a one-entry cache, each asked by 2..6 callers at seeded moments
    while its value is being made; the values each key handed out and how many
    times each was created."""
    flight: SingleFlight[str, str] = SingleFlight(TTLCache(max_size=1, ttl=300))
    values: dict[str, set[str]] = {}
    creations: dict[str, int] = {}

    async def ask(key: str, at: float, delay: float) -> None:
        async def create() -> str:
            await trio.sleep(delay)
            creations[key] = creations.get(key, 0) + 1
            return f"{key}#{creations[key]}"

        await trio.sleep(at)
        value, _ = await flight.get_or_create(key, create)
        values.setdefault(key, set()).add(value)

    async with trio.open_nursery() as nursery:
        for n in range(8):
            start = rng.randint(0, 20) / 1000
            delay = rng.randint(5, 30) / 1000
            nursery.start_soon(ask, f"k{n}", start, delay)
            for _ in range(rng.randint(1, 5)):
                later = start + rng.randrange(0, int(delay * 1000)) / 1000
                nursery.start_soon(ask, f"k{n}", later, delay)
    return values, creations


@pytest.mark.parametrize("seed", range(5))
async def test_concurrent_duplicates_share_one_value_with_a_tiny_cache(
    autojump_clock: trio.testing.MockClock, seed: int
) -> None:
    """With cache size 1 and many keys, concurrent callers of a key share one value."""
    rng = random.Random(seed)
    for _ in range(40):
        values, creations = await crowded_run(rng)
        assert values == {f"k{n}": {f"k{n}#1"} for n in range(8)}
        assert creations == dict.fromkeys(values, 1)


async def test_a_failed_owner_hands_over_to_one_waiter_whom_the_rest_follow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After the owner fails, one waiter creates; the other waiters get its value."""
    flight: SingleFlight[str, str] = SingleFlight(TTLCache(max_size=1, ttl=60))
    attempts: list[float] = []
    got: list[tuple[str, bool]] = []

    async def create() -> str:
        attempts.append(trio.current_time())
        await trio.sleep(1)
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return f"value-{len(attempts)}"

    async def owner() -> None:
        with pytest.raises(RuntimeError, match=r"^boom$"):
            await flight.get_or_create("k", create)

    async def waiter() -> None:
        got.append(await flight.get_or_create("k", create))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(owner)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            nursery.start_soon(waiter)
    assert attempts == [0.0, 1.0]
    assert sorted(got) == [("value-2", False), ("value-2", True), ("value-2", True)]
    assert trio.current_time() == 2.0


async def test_a_cancelled_owner_hands_over_to_one_waiter_whom_the_rest_follow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After the owner is cancelled, one waiter creates; the others get its value."""
    flight: SingleFlight[str, str] = SingleFlight(TTLCache(max_size=1, ttl=60))
    attempts: list[float] = []
    got: list[tuple[str, bool]] = []

    async def create() -> str:
        attempts.append(trio.current_time())
        await trio.sleep(2)
        return f"value-{len(attempts)}"

    async def owner() -> None:
        with trio.move_on_after(1) as scope:
            await flight.get_or_create("k", create)
        assert scope.cancelled_caught

    async def waiter() -> None:
        got.append(await flight.get_or_create("k", create))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(owner)
        await trio.testing.wait_all_tasks_blocked()
        for _ in range(3):
            nursery.start_soon(waiter)
    assert attempts == [0.0, 1.0]
    assert sorted(got) == [("value-2", False), ("value-2", True), ("value-2", True)]
    assert trio.current_time() == 3.0
