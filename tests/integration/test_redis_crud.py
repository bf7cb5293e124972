"""The CRUD stores one level down: `ResourceStore` (memory) and `RedisResourceStore`
run the same tests and must answer alike; then what only Redis has to show: one
record for one key across connections and processes, and a lost Redis."""

from __future__ import annotations

import json
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import pytest
import trio

from trio_resilience.redis import RedisConnection, RedisUnavailableError, open_redis
from trio_resilience.server._redis_resources import RedisResourceStore
from trio_resilience.server._resources import (
    KeyGoneError,
    KeyReusedError,
    ResourceBackend,
    ResourceStore,
    StoreFullError,
)

from .conftest import start_redis

PEN = {"name": "pen", "price": 1.5}
INK = {"name": "ink", "price": 2.25, "description": None}


class StoreFactory(Protocol):
    def __call__(
        self, name: str = "items", *, max_items: int = 100, key_retention: float = 60
    ) -> ResourceBackend: ...


@pytest.fixture(params=["memory", "redis"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """None for the in-memory store, else the URL of a freshly emptied Redis."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def make_store(backend_url: str | None) -> AsyncIterator[StoreFactory]:
    """Makes stores of the backend under test (Redis: on one open connection)."""
    if backend_url is None:

        def memory(
            name: str = "items", *, max_items: int = 100, key_retention: float = 60
        ) -> ResourceBackend:
            return ResourceStore(max_items=max_items, key_retention=key_retention)

        yield memory
        return
    async with open_redis(backend_url) as redis:

        def in_redis(
            name: str = "items", *, max_items: int = 100, key_retention: float = 60
        ) -> ResourceBackend:
            return RedisResourceStore(
                redis, name, max_items=max_items, key_retention=key_retention
            )

        yield in_redis


async def ids_of(store: ResourceBackend) -> list[int]:
    page = await store.page(after=None, limit=1000)
    return [record["id"] for record in page.records]


# -- the same behaviour from both backends -----------------------------------------


async def test_create_get_replace_delete(make_store: StoreFactory) -> None:
    """Records get increasing ids (never reused after a delete); replace keeps the
    id; replace, get and delete of an unknown id answer None, None, False."""
    store = make_store()
    first = await store.create(PEN)
    second = await store.create(INK)
    assert (first.record, first.replayed) == ({"id": 1, **PEN}, False)
    assert second.record == {"id": 2, **INK}
    assert await store.get(1) == {"id": 1, **PEN}
    assert await store.replace(1, INK) == {"id": 1, **INK}
    assert await store.get(1) == {"id": 1, **INK}
    assert await store.replace(9, PEN) is None
    assert await store.get(9) is None
    assert await store.delete(2) is True
    assert await store.delete(2) is False
    assert await store.get(2) is None
    assert await store.replace(2, PEN) is None
    assert (await store.create({})).record == {"id": 3}
    assert await ids_of(store) == [1, 3]
    stats = await store.statistics()
    assert (stats.records, stats.max_items, stats.keys, stats.deleted_keys) == (
        2,
        100,
        0,
        0,
    )
    assert store.max_items == 100


async def test_pages_follow_ids_after_a_cursor(make_store: StoreFactory) -> None:
    """A page is the first ``limit`` records above ``after``, in id order;
    ``next_after`` is the last id served while more follow, else None."""
    store = make_store()
    for n in range(7):
        await store.create({"n": n})
    for record_id in (2, 5):
        await store.delete(record_id)
    first = await store.page(after=None, limit=3)
    second = await store.page(after=first.next_after, limit=3)
    last = await store.page(after=6, limit=3)
    exact = await store.page(after=None, limit=5)
    from_a_deleted_id = await store.page(after=2, limit=2)
    below_every_id = await store.page(after=-5, limit=1)
    past_the_end = await store.page(after=99, limit=3)
    assert ([r["id"] for r in first.records], first.next_after) == ([1, 3, 4], 4)
    assert ([r["id"] for r in second.records], second.next_after) == ([6, 7], None)
    assert second.records[0] == {"id": 6, "n": 5}
    assert ([r["id"] for r in last.records], last.next_after) == ([7], None)
    assert ([r["id"] for r in exact.records], exact.next_after) == (
        [1, 3, 4, 6, 7],
        None,
    )
    assert [r["id"] for r in from_a_deleted_id.records] == [3, 4]
    assert from_a_deleted_id.next_after == 4
    assert ([r["id"] for r in below_every_id.records], below_every_id.next_after) == (
        [1],
        1,
    )
    assert (past_the_end.records, past_the_end.next_after) == ([], None)
    with pytest.raises(ValueError, match=r"^limit must be >= 1$"):
        await store.page(after=None, limit=0)


async def test_a_full_store_refuses_new_records(make_store: StoreFactory) -> None:
    """With max_items records a new one raises StoreFullError; a keyed replay still
    answers, and a delete makes room."""
    store = make_store(max_items=3)
    keyed = await store.create(PEN, key="k", fingerprint="f")
    await store.create(PEN)
    await store.create(PEN)
    with pytest.raises(StoreFullError, match=r"^the store is full \(3 records\)$") as e:
        await store.create(PEN)
    assert e.value.max_items == 3
    replay = await store.create(PEN, key="k", fingerprint="f")
    assert (replay.record, replay.replayed) == (keyed.record, True)
    with pytest.raises(StoreFullError):
        await store.create(PEN, key="new", fingerprint="f")
    assert await store.delete(2)
    assert (await store.create(PEN)).record["id"] == 4
    stats = await store.statistics()
    assert (stats.records, stats.max_items, stats.keys) == (3, 3, 1)


async def test_a_key_replays_its_record_as_it_is_now(make_store: StoreFactory) -> None:
    """The same key and fingerprint replay the key's record, as replaced since; a
    None fingerprint matches any; another fingerprint raises KeyReusedError and
    creates nothing."""
    store = make_store()
    first = await store.create(PEN, key="k-1", fingerprint="f1")
    await store.create(INK, key="k-2", fingerprint="f2")
    again = await store.create(PEN, key="k-1", fingerprint="f1")
    assert (again.record, again.replayed) == ({"id": 1, **PEN}, True)
    await store.replace(1, INK)
    now = await store.create(PEN, key="k-1", fingerprint="f1")
    assert (now.record, now.replayed) == ({"id": 1, **INK}, True)
    assert (await store.create(PEN, key="k-1")).record["id"] == 1
    unfingerprinted = await store.create(PEN, key="k-3")
    assert (await store.create(PEN, key="k-3", fingerprint="any")).replayed
    with pytest.raises(
        KeyReusedError,
        match=r"^idempotency key 'k-1' was already used for another request "
        r"\(record 1\)$",
    ) as reused:
        await store.create(PEN, key="k-1", fingerprint="other")
    assert (reused.value.key, reused.value.record_id) == ("k-1", 1)
    assert first.record["id"] == 1
    assert unfingerprinted.record["id"] == 3
    stats = await store.statistics()
    assert (stats.records, stats.keys, stats.deleted_keys) == (3, 3, 0)


async def test_a_deleted_records_key_is_gone(make_store: StoreFactory) -> None:
    """After its record is deleted a key raises KeyGoneError (or KeyReusedError
    for another fingerprint) while it is retained; a record without a key leaves
    no key behind."""
    store = make_store()
    await store.create(PEN, key="k", fingerprint="f")
    await store.create(PEN)
    assert await store.delete(1)
    assert await store.delete(2)
    with pytest.raises(
        KeyGoneError,
        match=r"^the record idempotency key 'k' created \(1\) was deleted$",
    ) as gone:
        await store.create(PEN, key="k", fingerprint="f")
    assert (gone.value.key, gone.value.record_id) == ("k", 1)
    with pytest.raises(KeyGoneError):
        await store.create(PEN, key="k")
    with pytest.raises(KeyReusedError):
        await store.create(PEN, key="k", fingerprint="other")
    stats = await store.statistics()
    assert (stats.records, stats.keys, stats.deleted_keys) == (0, 0, 1)
    assert await ids_of(store) == []


async def test_deleted_keys_are_bounded_by_max_items(make_store: StoreFactory) -> None:
    """At most max_items keys of deleted records are kept, the oldest forgotten
    first."""
    store = make_store(max_items=3)
    for n in range(5):
        created = await store.create(PEN, key=f"k{n}", fingerprint="f")
        await store.delete(created.record["id"])
    stats = await store.statistics()
    assert (stats.records, stats.keys, stats.deleted_keys) == (0, 0, 3)
    for kept in ("k2", "k3", "k4"):
        with pytest.raises(KeyGoneError):
            await store.create(PEN, key=kept, fingerprint="f")
    anew = await store.create(PEN, key="k0", fingerprint="g")
    assert (anew.record["id"], anew.replayed) == (6, False)


async def test_a_deleted_key_is_free_after_key_retention(
    make_store: StoreFactory,
) -> None:
    """Once key_retention has passed (trio time in memory, Redis time in Redis) a
    deleted record's key creates a new record, which it then replays."""
    store = make_store(key_retention=0.2)
    await store.create(PEN, key="k", fingerprint="f")
    await store.delete(1)
    with trio.fail_after(5):
        while True:  # polled: the key expires on the backend's own clock
            try:
                anew = await store.create(PEN, key="k", fingerprint="f")
                break
            except KeyGoneError:
                await trio.sleep(0.02)
    assert (anew.record, anew.replayed) == ({"id": 2, **PEN}, False)
    replay = await store.create(PEN, key="k", fingerprint="f")
    assert (replay.record, replay.replayed) == (anew.record, True)
    stats = await store.statistics()
    assert (stats.records, stats.keys, stats.deleted_keys) == (1, 1, 0)


async def test_collections_are_separate(make_store: StoreFactory) -> None:
    """Two collections have their own ids and keys."""
    items, users = make_store("items"), make_store("users")
    await items.create(PEN, key="k", fingerprint="f")
    await items.create(PEN)
    user = await users.create({"name": "Ann"}, key="k", fingerprint="g")
    assert (user.record, user.replayed) == ({"id": 1, "name": "Ann"}, False)
    assert await ids_of(items) == [1, 2]
    assert await ids_of(users) == [1]


async def test_misuse_is_refused(make_store: StoreFactory) -> None:
    """Both stores need max_items >= 1 and key_retention > 0, with one message."""
    with pytest.raises(ValueError, match=r"^max_items must be >= 1$"):
        make_store(max_items=0)
    with pytest.raises(ValueError, match=r"^key_retention must be > 0$"):
        make_store(key_retention=0)


async def test_random_operations_answer_alike(redis_url: str) -> None:
    """600 seeded random operations give the same answers and errors from the
    memory store and the Redis store, step by step."""
    rng = random.Random(12)
    async with open_redis(redis_url) as redis:
        stores: list[ResourceBackend] = [
            ResourceStore(max_items=5, key_retention=60),
            RedisResourceStore(redis, "items", max_items=5, key_retention=60),
        ]

        async def apply(store: ResourceBackend, step: tuple[Any, ...]) -> Any:
            operation, *args = step
            try:
                if operation == "create":
                    data, key, fingerprint = args
                    created = await store.create(data, key=key, fingerprint=fingerprint)
                    return (created.record, created.replayed)
                if operation == "page":
                    found = await store.page(after=args[0], limit=args[1])
                    return (found.records, found.next_after)
                if operation == "statistics":
                    return await store.statistics()
                method = getattr(store, operation)
                return await method(*args)
            except (StoreFullError, KeyReusedError, KeyGoneError) as error:
                return (type(error), str(error))

        for n in range(600):
            record_id = rng.randint(0, 12)
            step: tuple[Any, ...] = rng.choice(
                [
                    (
                        "create",
                        {"n": n, "price": n / 7},
                        rng.choice([None, "a", "b", "c", "d", "e", "f", "g"]),
                        rng.choice([None, "x", "y"]),
                    ),
                    ("create", {"n": n}, None, None),
                    ("delete", record_id),
                    ("delete", record_id),
                    ("replace", record_id, {"n": n, "replaced": True}),
                    ("get", record_id),
                    ("page", rng.choice([None, *range(-1, 12)]), rng.randint(1, 4)),
                    ("statistics",),
                ]
            )
            memory, in_redis = [await apply(store, step) for store in stores]
            assert memory == in_redis, (n, step)


# -- only Redis: several connections and processes, a lost server ------------------


async def test_one_key_from_two_connections_creates_one_record(
    redis_url: str,
) -> None:
    """50 concurrent creates with one key, over two connections (as two worker
    processes would hold), create one record; 49 replay it."""
    async with open_redis(redis_url) as one, open_redis(redis_url) as two:
        stores = [
            RedisResourceStore(c, "items", max_items=100, key_retention=60)
            for c in (one, two)
        ]
        answers: list[tuple[int, bool]] = []

        async def create(store: RedisResourceStore) -> None:
            created = await store.create(PEN, key="same", fingerprint="f")
            answers.append((created.record["id"], created.replayed))

        async with trio.open_nursery() as nursery:
            for n in range(50):
                nursery.start_soon(create, stores[n % 2])
        assert {record_id for record_id, _ in answers} == {1}
        assert sorted(replayed for _, replayed in answers) == [False] + [True] * 49
        assert await ids_of(stores[1]) == [1]
        stats = await stores[0].statistics()
        assert (stats.records, stats.keys) == (1, 1)


_CHILD = """
import json, sys, trio
from trio_resilience.redis import open_redis
from trio_resilience.server._redis_resources import RedisResourceStore

async def main(url):
    async with open_redis(url) as redis:
        store = RedisResourceStore(redis, "items", max_items=100, key_retention=60)
        await redis.run(lambda client: client.rpush("test:ready", ["1"]))
        await redis.run(lambda client: client.blpop(["test:go"], timeout=20))
        answers = []

        async def create():
            created = await store.create({"name": "pen"}, key="same", fingerprint="f")
            answers.append([created.record["id"], created.replayed])

        async with trio.open_nursery() as nursery:
            for _ in range(25):
                nursery.start_soon(create)
        print(json.dumps(answers))

trio.run(main, sys.argv[1])
"""


async def test_one_key_from_two_processes_creates_one_record(redis_url: str) -> None:
    """Two processes, released together, send 25 concurrent creates each with one
    key: one record, 49 replays."""
    outputs: list[bytes] = []

    async def child() -> None:
        done = await trio.run_process(
            [sys.executable, "-c", _CHILD, redis_url], capture_stdout=True
        )
        outputs.append(done.stdout)

    with trio.fail_after(60):
        async with open_redis(redis_url) as redis, trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(child)
            for _ in range(2):  # both ready: release them at once
                assert await redis.run(lambda c: c.blpop(["test:ready"], timeout=30))
            await redis.run(lambda c: c.rpush("test:go", ["1", "1"]))
    answers = [tuple(answer) for output in outputs for answer in json.loads(output)]
    assert len(answers) == 50
    assert {record_id for record_id, _ in answers} == {1}
    assert sorted(replayed for _, replayed in answers) == [False] + [True] * 49


async def test_a_stopped_redis_raises_redis_unavailable(tmp_path: Path) -> None:
    """With its Redis stopped every store operation raises RedisUnavailableError."""
    server = start_redis(tmp_path)
    try:
        async with RedisConnection(server.url()) as redis:
            store = RedisResourceStore(redis, "items", max_items=10, key_retention=60)
            await store.create(PEN, key="k", fingerprint="f")
            assert await store.get(1) == {"id": 1, **PEN}
            server.process.terminate()
            server.process.wait(10)
            operations = [
                lambda: store.create(PEN, key="k", fingerprint="f"),
                lambda: store.create(PEN),
                lambda: store.get(1),
                lambda: store.replace(1, INK),
                lambda: store.delete(1),
                lambda: store.page(after=None, limit=10),
                lambda: store.statistics(),
            ]
            for operation in operations:
                with trio.fail_after(10), pytest.raises(RedisUnavailableError):
                    await operation()
    finally:
        if server.process.poll() is None:
            server.process.kill()
        server.process.wait()
