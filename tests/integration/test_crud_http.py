"""The CRUD demo over real HTTP: issue 10's reproductions of unbounded stores, keys
evicted from the answer cache, keys reused with another body, lax numbers."""

from __future__ import annotations

from typing import Any

import httpx
import trio

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background

ITEM = {"name": "pen", "price": 2.5}
USER = {"name": "Ann", "email": "ann@example.com"}
QUIET = {"log_level": "ERROR"}


async def fill(url: str, path: str, count: int, *, tasks: int = 8) -> None:
    """POST ``count`` records, ``tasks`` connections at a time."""
    remaining = iter(range(count))

    async def worker() -> None:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in remaining:
                response = await client.post(path, json=ITEM)
                assert response.status_code == 201

    async with trio.open_nursery() as nursery:
        for _ in range(tasks):
            nursery.start_soon(worker)


async def walk(
    client: httpx.AsyncClient, url: str, collection: str = "items"
) -> tuple[list[int], list[int]]:
    """Follow ``next`` from ``url``: (every id served, the size of each page)."""
    ids: list[int] = []
    sizes: list[int] = []
    next_url: str | None = url
    while next_url is not None:
        response = await client.get(next_url)
        assert response.status_code == 200
        page: dict[str, Any] = response.json()
        ids += [record["id"] for record in page[collection]]
        sizes.append(len(page[collection]))
        next_url = page["next"]
    return ids, sizes


async def test_a_keyed_post_retried_after_1000_other_keyed_posts_replays() -> None:
    """With default settings, a keyed POST retried after 1,000 other keyed POSTs
    replays its item instead of creating a second one."""
    async with serve_in_background(ServerSettings(**QUIET)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            headers = {"X-Request-ID": "retry-me"}
            first = await client.post("/api/v1/items", json=ITEM, headers=headers)
            for n in range(1000):
                other = {"X-Request-ID": f"other-{n}"}
                await client.post("/api/v1/items", json=ITEM, headers=other)
            retry = await client.post("/api/v1/items", json=ITEM, headers=headers)
            assert (retry.status_code, retry.json()) == (201, first.json())
            assert retry.headers["Idempotent-Replayed"] == "true"
            ids, _ = await walk(client, "/api/v1/items?limit=1000")
    assert ids == list(range(1, 1002))


async def test_a_full_collection_answers_507_over_http() -> None:
    """Past crud_max_items a POST is 507 with a reason; listing shows the cap held."""
    settings = ServerSettings(crud_max_items=5, **QUIET)
    async with serve_in_background(settings) as url:
        await fill(url, "/api/v1/items", 5, tasks=2)
        async with httpx.AsyncClient(base_url=url) as client:
            refused = await client.post("/api/v1/items", json=ITEM)
            ids, _ = await walk(client, "/api/v1/items")
    assert refused.status_code == 507
    assert refused.json() == {
        "detail": "The items collection is full (5 items, crud_max_items): "
        "delete some first"
    }
    assert ids == [1, 2, 3, 4, 5]


async def test_health_answers_while_full_pages_are_served() -> None:
    """While clients page through 1,500 items 1,000 at a time, /health keeps
    answering 200 between pages; no page holds more than its limit."""
    settings = ServerSettings(crud_max_items=1500, **QUIET)
    walking = trio.Event()
    walks: list[tuple[list[int], list[int]]] = []
    health: list[int] = []
    async with serve_in_background(settings) as url:
        await fill(url, "/api/v1/items", 1500)

        async def walker() -> None:
            async with httpx.AsyncClient(base_url=url) as client:
                for _ in range(5):
                    walking.set()
                    walks.append(await walk(client, "/api/v1/items?limit=1000"))

        async def probe(done: trio.Event) -> None:
            async with httpx.AsyncClient(base_url=url) as client:
                await walking.wait()
                while not done.is_set():
                    health.append((await client.get("/health")).status_code)

        done = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe, done)
            async with trio.open_nursery() as walkers:
                for _ in range(4):
                    walkers.start_soon(walker)
            done.set()
    assert len(walks) == 20
    for ids, sizes in walks:
        assert ids == list(range(1, 1501))
        assert sizes == [1000, 500]
    assert health
    assert set(health) == {200}


async def test_a_key_reused_with_another_body_is_422_over_http() -> None:
    """The same X-Request-ID with another body is a 422 naming the key; the same
    body replays with Idempotent-Replayed: true."""
    async with serve_in_background(ServerSettings(**QUIET)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            headers = {"X-Request-ID": "order-1"}
            first = await client.post("/api/v1/users", json=USER, headers=headers)
            other = {**USER, "email": "bob@example.com"}
            reused = await client.post("/api/v1/users", json=other, headers=headers)
            again = await client.post("/api/v1/users", json=USER, headers=headers)
            assert first.status_code == 201
            assert reused.status_code == 422
            ids, _ = await walk(client, "/api/v1/users", "users")
    (problem,) = reused.json()["detail"]
    assert problem["loc"] == ["header", "X-Request-ID"]
    assert problem["type"] == "key_reused"
    assert problem["msg"].startswith(
        "Idempotency key reused with a different request body"
    )
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert ids == [1]


async def test_a_deleted_items_key_answers_410_over_http() -> None:
    """A retried create whose item was deleted meanwhile gets 410, not a new item."""
    async with serve_in_background(ServerSettings(**QUIET)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            headers = {"X-Request-ID": "w-9"}
            created = await client.post("/api/v1/items", json=ITEM, headers=headers)
            deleted = await client.delete(created.headers["Location"])
            retry = await client.post("/api/v1/items", json=ITEM, headers=headers)
            listed = (await client.get("/api/v1/items")).json()
    assert deleted.status_code == 204
    assert retry.status_code == 410
    assert retry.json()["detail"].startswith("The item X-Request-ID 'w-9' created")
    assert listed == {"items": [], "next": None}


async def test_booleans_are_not_item_numbers_over_http() -> None:
    """quantity false (once stored as 0) and price true are 422s."""
    async with serve_in_background(ServerSettings(**QUIET)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            quantity = await client.post(
                "/api/v1/items", json={**ITEM, "quantity": False}
            )
            price = await client.post("/api/v1/items", json={**ITEM, "price": True})
            listed = (await client.get("/api/v1/items")).json()
    assert quantity.status_code == 422
    assert [p["loc"] for p in quantity.json()["detail"]] == [["body", "quantity"]]
    assert price.status_code == 422
    assert [p["loc"] for p in price.json()["detail"]] == [["body", "price"]]
    assert listed["items"] == []
