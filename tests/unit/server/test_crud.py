"""The CRUD demo (/api/v1/items, /api/v1/users): bounded stores, pages, durable and
checked idempotency keys, strict models, the OpenAPI document. On virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from openapi_spec_validator import validate
from quart.testing import QuartClient
from werkzeug.datastructures import Headers

from trio_resilience.server import ResilienceTestApp, ServerSettings, create_app
from trio_resilience.server._resources import ResourceStore

ITEM = {"name": "pen", "price": 1.5}
USER = {"name": "Ann", "email": "ann@example.com"}


@asynccontextmanager
async def app_for(**settings: Any) -> AsyncIterator[ResilienceTestApp]:
    settings.setdefault("shutdown_grace_period", 1)
    app = create_app(ServerSettings(**settings))
    async with app.test_app():
        yield app


@asynccontextmanager
async def client_for(**settings: Any) -> AsyncIterator[QuartClient]:
    async with app_for(**settings) as app:
        yield app.test_client()


async def post(
    client: QuartClient, path: str, body: Any, key: str | None = None
) -> tuple[int, Any, Headers]:
    headers = {} if key is None else {"X-Request-ID": key}
    response = await client.post(path, json=body, headers=headers)
    return response.status_code, await response.get_json(), response.headers


# -- item 2: bounded stores -------------------------------------------------------


@pytest.mark.parametrize(("collection", "body"), [("items", ITEM), ("users", USER)])
async def test_a_full_collection_refuses_new_records_with_507(
    autojump_clock: trio.testing.MockClock, collection: str, body: dict[str, Any]
) -> None:
    """With crud_max_items records a new POST is 507 with a reason; a keyed replay
    still answers 201, and a DELETE makes room again."""
    base = f"/api/v1/{collection}"
    async with app_for(crud_max_items=3) as app:
        client = app.test_client()
        first = await post(client, base, body, key="k-1")
        for _ in range(2):
            assert (await post(client, base, body))[0] == 201
        status, refused, _ = await post(client, base, body)
        replay = await post(client, base, body, key="k-1")
        assert (await client.delete(f"{base}/2")).status_code == 204
        again = await post(client, base, body)
        stats = await app.state.resources[collection].statistics()
    assert (status, refused) == (
        507,
        {
            "detail": f"The {collection} collection is full (3 {collection}, "
            "crud_max_items): delete some first"
        },
    )
    assert replay[:2] == (201, first[1])
    assert replay[2]["Idempotent-Replayed"] == "true"
    assert again[0] == 201
    assert again[1]["id"] == 4
    assert (stats.records, stats.max_items, stats.keys) == (3, 3, 1)


def test_crud_max_items_default_and_bounds() -> None:
    """crud_max_items defaults to 10,000 per collection and must be 1 to 1,000,000."""
    assert ServerSettings().crud_max_items == 10_000
    assert ServerSettings().crud_key_retention == 86_400
    for bad in (0, 1_000_001):
        with pytest.raises(ValueError, match="crud_max_items"):
            ServerSettings(crud_max_items=bad)
    with pytest.raises(ValueError, match="crud_key_retention"):
        ServerSettings(crud_key_retention=0)


async def test_pages_walk_the_collection_in_id_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """GET serves 100 records by default with a next URL carrying the last id; the
    pages cover every record once, in id order, and the last has next null."""
    async with client_for() as client:
        for _ in range(250):
            await post(client, "/api/v1/items", ITEM)
        first = await (await client.get("/api/v1/items")).get_json()
        seen = [record["id"] for record in first["items"]]
        url = first["next"]
        urls = [url]
        while url is not None:
            page = await (await client.get(url)).get_json()
            seen += [record["id"] for record in page["items"]]
            url = page["next"]
            urls.append(url)
    assert len(first["items"]) == 100
    assert first["items"][0] == {
        "id": 1,
        "name": "pen",
        "description": None,
        "price": 1.5,
        "quantity": 0,
    }
    assert urls == [
        "/api/v1/items?limit=100&after=100",
        "/api/v1/items?limit=100&after=200",
        None,
    ]
    assert seen == list(range(1, 251))


async def test_a_full_page_is_1000_records(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """limit=1000 serves 1000 records; a limit above 1000, a non-numeric cursor or an
    unknown parameter is a 422 naming it."""
    async with client_for() as client:
        for _ in range(1001):
            await post(client, "/api/v1/users", USER)
        page = await (await client.get("/api/v1/users?limit=1000")).get_json()
        last = await (await client.get(page["next"])).get_json()
        problems = {}
        for query in ("limit=1001", "limit=0", "after=abc", "after=-1", "offset=3"):
            response = await client.get(f"/api/v1/users?{query}")
            problems[query] = (
                response.status_code,
                [item["loc"] for item in (await response.get_json())["detail"]],
            )
    assert len(page["users"]) == 1000
    assert page["next"] == "/api/v1/users?limit=1000&after=1000"
    assert [user["id"] for user in last["users"]] == [1001]
    assert last["next"] is None
    assert problems == {
        "limit=1001": (422, [["query", "limit"]]),
        "limit=0": (422, [["query", "limit"]]),
        "after=abc": (422, [["query", "after"]]),
        "after=-1": (422, [["query", "after"]]),
        "offset=3": (422, [["query", "offset"]]),
    }


async def test_a_cursor_survives_deletes_and_creates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Records deleted or created between two pages neither shift nor repeat what
    the next page serves: the cursor is an id, not an offset."""
    async with app_for() as app:
        client = app.test_client()
        for _ in range(6):
            await post(client, "/api/v1/items", ITEM)
        first = await (await client.get("/api/v1/items?limit=3")).get_json()
        for record_id in (1, 3, 4):
            await client.delete(f"/api/v1/items/{record_id}")
        await post(client, "/api/v1/items", ITEM)
        second = await (await client.get(first["next"])).get_json()
        store = app.state.resources["items"]
        tail = await store.page(after=5, limit=3)
        past_the_end = await store.page(after=99, limit=3)
    assert [record["id"] for record in first["items"]] == [1, 2, 3]
    assert [record["id"] for record in second["items"]] == [5, 6, 7]
    assert second["next"] is None
    assert ([r["id"] for r in tail.records], tail.next_after) == ([6, 7], None)
    assert (past_the_end.records, past_the_end.next_after) == ([], None)


# -- item 4: a key replays for as long as its record exists ----------------------


async def test_a_key_outlives_the_answer_cache(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A keyed POST retried after more keyed POSTs than cache_max_size, and after
    cache_ttl_seconds, replays its record instead of creating a second one."""
    async with app_for(cache_max_size=10, cache_ttl_seconds=60) as app:
        client = app.test_client()
        first = await post(client, "/api/v1/items", ITEM, key="retry-me")
        for n in range(25):
            await post(client, "/api/v1/items", ITEM, key=f"other-{n}")
        await trio.sleep(86_400 * 3)
        retry = await post(client, "/api/v1/items", ITEM, key="retry-me")
        stats = await app.state.resources["items"].statistics()
    assert retry[:2] == (201, first[1])
    assert retry[2]["Idempotent-Replayed"] == "true"
    assert retry[2]["Location"] == "/api/v1/items/1"
    assert (stats.records, stats.keys) == (26, 26)


async def test_a_deleted_records_key_answers_410_then_is_forgotten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After a DELETE the key answers 410 with a reason (a retry does not bring the
    record back) for crud_key_retention seconds; then it creates anew."""
    async with app_for(crud_key_retention=600) as app:
        client = app.test_client()
        await post(client, "/api/v1/items", ITEM, key="k")
        assert (await client.delete("/api/v1/items/1")).status_code == 204
        gone = await post(client, "/api/v1/items", ITEM, key="k")
        held = await app.state.resources["items"].statistics()
        await trio.sleep(599.5)
        still_gone = await post(client, "/api/v1/items", ITEM, key="k")
        await trio.sleep(0.5)
        anew = await post(client, "/api/v1/items", ITEM, key="k")
        replay = await post(client, "/api/v1/items", ITEM, key="k")
        after = await app.state.resources["items"].statistics()
    assert gone[:2] == (
        410,
        {
            "detail": "The item X-Request-ID 'k' created (1) has been deleted; "
            "use a new key to create another"
        },
    )
    assert (held.records, held.keys, held.deleted_keys) == (0, 0, 1)
    assert still_gone[0] == 410
    assert anew[0] == 201
    assert anew[1]["id"] == 2
    assert "Idempotent-Replayed" not in anew[2]
    assert replay[:2] == (201, anew[1])
    assert (after.records, after.keys, after.deleted_keys) == (1, 1, 0)


async def test_deleted_keys_are_bounded_by_crud_max_items(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At most crud_max_items keys of deleted records are kept, the oldest
    forgotten first; a record without a key leaves none."""
    async with app_for(crud_max_items=3) as app:
        client = app.test_client()
        for n in range(5):
            _, record, _ = await post(client, "/api/v1/users", USER, key=f"k{n}")
            await client.delete(f"/api/v1/users/{record['id']}")
        _, unkeyed, _ = await post(client, "/api/v1/users", USER)
        await client.delete(f"/api/v1/users/{unkeyed['id']}")
        stats = await app.state.resources["users"].statistics()
        oldest = await post(client, "/api/v1/users", USER, key="k0")
        kept = await post(client, "/api/v1/users", USER, key="k2")
    assert (stats.records, stats.keys, stats.deleted_keys) == (0, 0, 3)
    assert oldest[0] == 201
    assert kept[0] == 410


async def test_put_keeps_the_key_and_its_replay_shows_the_record_now(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A PUT keeps the record's id and key: replaying the create (its original body)
    answers the updated record; a PUT to an unknown id is 404 before the body is
    validated."""
    async with app_for() as app:
        client = app.test_client()
        await post(client, "/api/v1/items", ITEM, key="k")
        renamed = {**ITEM, "name": "renamed"}
        updated = await client.put("/api/v1/items/1", json=renamed)
        replay = await post(client, "/api/v1/items", ITEM, key="k")
        reused = await post(client, "/api/v1/items", renamed, key="k")
        unknown = await client.put("/api/v1/items/9", json={"bogus": True})
        stats = await app.state.resources["items"].statistics()
    assert updated.status_code == 200
    assert replay[:2] == (201, {**renamed, "id": 1, "description": None, "quantity": 0})
    assert reused[0] == 422
    assert unknown.status_code == 404
    assert (stats.records, stats.keys) == (1, 1)


async def test_concurrent_posts_with_one_key_create_one_record(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Ten simultaneous POSTs with one key create a single record; nine replay."""
    answers: list[tuple[int, Any, Headers]] = []
    async with app_for() as app:
        client = app.test_client()

        async def one() -> None:
            answers.append(await post(client, "/api/v1/items", ITEM, key="same"))

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(one)
        stats = await app.state.resources["items"].statistics()
    assert {(status, body["id"]) for status, body, _ in answers} == {(201, 1)}
    replayed = [headers.get("Idempotent-Replayed") for _, _, headers in answers]
    assert replayed.count("true") == 9
    assert stats.records == 1


# -- item 5: a key reused with a different body ----------------------------------


@pytest.mark.parametrize(
    ("collection", "body", "other"),
    [
        ("items", ITEM, {**ITEM, "price": 2}),
        ("users", USER, {**USER, "email": "bob@example.com"}),
    ],
)
async def test_a_key_reused_with_another_body_is_422(
    autojump_clock: trio.testing.MockClock,
    collection: str,
    body: dict[str, Any],
    other: dict[str, Any],
) -> None:
    """The same X-Request-ID with a different body is a 422 with a reason and
    creates nothing; the same body, in another key order, still replays."""
    base = f"/api/v1/{collection}"
    singular = collection[:-1]
    async with app_for() as app:
        client = app.test_client()
        first = await post(client, base, body, key="k-7")
        reused = await post(client, base, other, key="k-7")
        reordered = dict(reversed(list(body.items())))
        replay = await post(client, base, reordered, key="k-7")
        stats = await app.state.resources[collection].statistics()
    assert reused[:2] == (
        422,
        {
            "detail": [
                {
                    "loc": ["header", "X-Request-ID"],
                    "msg": "Idempotency key reused with a different request body: "
                    f"X-Request-ID 'k-7' created {singular} 1 from another body "
                    f"(use a new key for a new {singular})",
                    "type": "key_reused",
                }
            ]
        },
    )
    assert replay[:2] == (201, first[1])
    assert replay[2]["Idempotent-Replayed"] == "true"
    assert stats.records == 1


async def test_spelled_out_defaults_are_the_same_body(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Bodies are compared after validation: a default given explicitly, or an
    integral price written as an integer, is the same request."""
    async with client_for() as client:
        first = await post(client, "/api/v1/items", {"name": "a", "price": 2}, "k")
        spelled = {"name": "a", "price": 2.0, "quantity": 0, "description": None}
        replay = await post(client, "/api/v1/items", spelled, "k")
    assert replay[:2] == (201, first[1])


async def test_a_deleted_records_key_with_another_body_is_422(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A key whose record was deleted, reused with a different body, is a 422 (a
    reuse), not a 410."""
    async with client_for() as client:
        await post(client, "/api/v1/items", ITEM, key="k")
        await client.delete("/api/v1/items/1")
        reused = await post(client, "/api/v1/items", {**ITEM, "price": 9}, key="k")
    assert reused[0] == 422
    assert reused[1]["detail"][0]["type"] == "key_reused"


# -- strict models -----------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        {"quantity": False},
        {"quantity": True},
        {"quantity": 1.0},
        {"quantity": "1"},
        {"price": True},
        {"price": "1.5"},
    ],
)
async def test_item_numbers_are_strict(
    autojump_clock: trio.testing.MockClock, field: dict[str, Any]
) -> None:
    """Booleans, strings and (for quantity) floats are not numbers: 422 naming the
    field, on POST and PUT."""
    ((name, _),) = field.items()
    async with client_for() as client:
        await post(client, "/api/v1/items", ITEM)
        status, body, _ = await post(client, "/api/v1/items", {**ITEM, **field})
        put = await client.put("/api/v1/items/1", json={**ITEM, **field})
        put_body = await put.get_json()
    assert status == 422
    assert [item["loc"] for item in body["detail"]] == [["body", name]]
    assert put.status_code == 422
    assert [item["loc"] for item in put_body["detail"]] == [["body", name]]


async def test_integral_numbers_are_accepted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An integer price and an integer quantity are fine."""
    async with client_for() as client:
        status, body, _ = await post(
            client, "/api/v1/items", {"name": "a", "price": 3, "quantity": 2}
        )
    assert status == 201
    assert (body["price"], body["quantity"]) == (3.0, 2)


# -- OpenAPI -----------------------------------------------------------------------


async def test_crud_routes_are_fully_documented(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Every CRUD operation documents its statuses with models (204 without a
    body), the list its next URL, POST its X-Request-ID header and required body;
    the CRUD part of the document is a valid OpenAPI document."""
    async with client_for() as client:
        spec = await (await client.get("/openapi.json")).get_json()
    for collection in ("items", "users"):
        base = f"/api/v1/{collection}"
        one = f"{base}/{{record_id}}"
        operations = spec["paths"][base] | {
            f"{method} one": operation
            for method, operation in spec["paths"][one].items()
        }
        statuses = {
            method: set(operation["responses"])
            for method, operation in operations.items()
        }
        assert statuses["post"] >= {"201", "400", "410", "413", "415", "422", "507"}
        assert statuses["get"] >= {"200", "422"}
        assert statuses["get one"] >= {"200", "404"}
        assert statuses["put one"] >= {"200", "404", "413", "415", "422"}
        assert statuses["delete one"] >= {"204", "404"}
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status == "204":
                    assert "content" not in response
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema, (collection, method, status)
        post_op = operations["post"]
        assert post_op["requestBody"]["required"] is True
        assert operations["put one"]["requestBody"]["required"] is True
        headers = [p["name"] for p in post_op["parameters"] if p["in"] == "header"]
        assert headers == ["X-Request-ID"]
        assert set(post_op["responses"]["201"]["headers"]) >= {
            "Location",
            "Idempotent-Replayed",
        }
        page = operations["get"]["responses"]["200"]["content"]["application/json"]
        assert set(page["schema"]["properties"]) == {collection, "next"}
        query = {p["name"] for p in operations["get"]["parameters"]}
        assert query == {"limit", "after"}
    crud_only = {
        **spec,
        "paths": {
            path: operations
            for path, operations in spec["paths"].items()
            if path.startswith(("/api/v1/items", "/api/v1/users"))
        },
    }
    validate(crud_only)


async def test_store_misuse_is_refused(autojump_clock: trio.testing.MockClock) -> None:
    """A ResourceStore needs max_items >= 1, key_retention > 0 and limit >= 1."""
    with pytest.raises(ValueError, match=r"^max_items must be >= 1$"):
        ResourceStore(max_items=0, key_retention=1)
    with pytest.raises(ValueError, match=r"^key_retention must be > 0$"):
        ResourceStore(max_items=1, key_retention=0)
    with pytest.raises(ValueError, match=r"^limit must be >= 1$"):
        await ResourceStore(max_items=1, key_retention=1).page(after=None, limit=0)
