"""A write whose answer is lost: committed, then answered 503. An idempotency key
makes the retry safe.

Run: ``python examples/fault_commit_then_fail.py`` (starts its own server).

``commit_then_fail`` runs the route (the item is created) and then answers 503
instead of 201. The client retries the POST with the same ``X-Request-ID`` (the
``request_id=`` given; without one it makes a UUID, also sent on every attempt of
the call), so the server replays the item it created (``Idempotent-Replayed:
true``) instead of creating a second one.
"""

from __future__ import annotations

from _fault_example import attempts, check, client, run, server

ITEMS = "/api/v1/items"
KEY = "create-widget-1"


async def main() -> None:
    async with server() as (base_url, faults):
        await faults.add(method="POST", path=ITEMS, commit_then_fail=503, times=1)
        async with client(base_url) as http:
            created = await http.post(
                ITEMS, json={"name": "widget", "price": 3}, request_id=KEY
            )
            replayed = created.headers.get("Idempotent-Replayed", "false")
            print(f"  client: got {created.status_code} (replayed: {replayed})")
            items = (await http.get(ITEMS)).json()["items"]
        posts = await attempts(faults, ITEMS, 2, method="POST")
        seen = [(e["status"], e["request_id"]) for e in posts]
        check(
            seen == [(503, KEY), (201, KEY)],
            f"expected a 503 then a 201, both keyed {KEY}: {seen}",
        )
        check(replayed == "true", "the retry was not answered from the first write")
        check(len(items) == 1, f"expected exactly one item, found {items}")
        print(f"items on the server: {len(items)} ({items[0]['name']})")


if __name__ == "__main__":
    run(main)
