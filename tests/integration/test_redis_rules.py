"""``serve --workers 4 --state-url``: fault rules and the request journal are
global, whichever worker each fresh connection reaches (the kernel's accept
queue spreads them)."""

from __future__ import annotations

import httpx
import trio

from .test_workers_redis import fresh_get, workers_server

RULE_3 = {
    "match": {"path": "/msg"},
    "action": {"status": 500, "body": {"detail": "planned"}},
    "times": 3,
}


async def test_a_rule_budget_holds_across_workers(redis_url: str) -> None:
    """A rule with times 3, then 40 GETs on fresh connections: exactly 3 fail,
    and every worker's GET /faults counts them."""
    async with workers_server(redis_url) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            posted = await client.post("/faults", json=RULE_3)
        assert posted.status_code == 201
        rule_id = posted.json()["id"]
        answers = [await fresh_get(server.base_url, "/msg") for _ in range(40)]
        failed = [r for r in answers if r.status_code == 500]
        assert len(failed) == 3
        assert {r.json()["detail"] for r in failed} == {"planned"}
        assert {r.status_code for r in answers} == {200, 500}
        for _ in range(8):
            (view,) = (await fresh_get(server.base_url, "/faults")).json()["rules"]
            assert view["id"] == rule_id
            assert (view["fired"], view["matched"], view["remaining"]) == (3, 3, 0)
            assert view["live"] is False


async def test_a_delete_on_one_worker_stops_the_rule_on_all(redis_url: str) -> None:
    async with workers_server(redis_url) as server:
        rule = {"match": {"path": "/msg"}, "action": {"status": 503}}
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            assert (await client.post("/faults", json=rule)).status_code == 201
        with trio.fail_after(10):
            # Polled: the other workers take the rule up from pub/sub.
            failing = 0
            while failing < 12:
                answer = await fresh_get(server.base_url, "/msg")
                failing = failing + 1 if answer.status_code == 503 else 0
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            assert (await client.delete("/faults")).status_code == 204
        for _ in range(20):
            assert (await fresh_get(server.base_url, "/msg")).status_code == 200
        assert (await fresh_get(server.base_url, "/faults")).json() == {"rules": []}


async def test_the_journal_holds_every_workers_requests(redis_url: str) -> None:
    """20 scoped requests on fresh connections: any worker lists all 20 (within
    moments), and a DELETE on one empties the scope for all."""
    async with workers_server(redis_url) as server:
        sent = [
            await fresh_get(server.base_url, "/msg", **{"X-Fault-Scope": "s1"})
            for _ in range(20)
        ]
        ids = {answer.headers["X-Request-ID"] for answer in sent}
        assert len(ids) == 20
        await fresh_get(server.base_url, "/msg", **{"X-Fault-Scope": "other"})

        async def listed() -> list[dict[str, object]]:
            answer = await fresh_get(server.base_url, "/requests?scope=s1")
            entries: list[dict[str, object]] = answer.json()["requests"]
            return entries

        with trio.fail_after(10):
            while True:  # polled: entries wait in other workers' queues
                if len(await listed()) >= 20:
                    break
                await trio.sleep(0.01)
        for _ in range(8):
            entries = await listed()
            assert {entry["request_id"] for entry in entries} == ids
            assert {entry["scope"] for entry in entries} == {"s1"}
        gone = await fresh_get(server.base_url, "/requests?scope=other")
        assert len(gone.json()["requests"]) == 1
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            assert (await client.delete("/requests?scope=s1")).status_code == 204
        for _ in range(8):
            assert await listed() == []
        kept = await fresh_get(server.base_url, "/requests?scope=other")
        assert len(kept.json()["requests"]) == 1
