"""Fault rules and the request journal in Redis, one level down: two apps served
in this process on one Redis database act as two workers (cheaper than
subprocesses; ``test_redis_rules.py`` runs the real ``serve --workers 4``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio

from trio_resilience.redis import open_redis
from trio_resilience.server import ServerSettings, create_app
from trio_resilience.server._fault_rules import FaultPlan
from trio_resilience.server._fault_schema import FaultRuleIn
from trio_resilience.server._journal import JournalEntry
from trio_resilience.server._redis_journal import RedisJournal
from trio_resilience.server._redis_plan import RedisFaultRules, definition
from trio_resilience.server._rule_store import MemoryFaultRules, MemoryJournalStore
from trio_resilience.testing import serve_in_background

from .conftest import start_redis

FAIL_MSG_3 = {
    "match": {"path": "/anything"},
    "action": {"status": 500, "body": {"detail": "planned"}},
    "times": 3,
}


def settings(url: str, **changes: Any) -> ServerSettings:
    return ServerSettings(
        log_level="ERROR", shutdown_grace_period=1, state_url=url, **changes
    )


@asynccontextmanager
async def two_workers(
    url: str, **changes: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    async with (
        serve_in_background(settings(url, **changes)) as one,
        serve_in_background(settings(url, **changes)) as two,
        httpx.AsyncClient(base_url=one) as first,
        httpx.AsyncClient(base_url=two) as second,
    ):
        yield first, second


async def until(deadline: float, check: Any) -> Any:
    """Poll ``check()`` until it returns something true (no message tells the
    test that another worker has caught up)."""
    with trio.fail_after(deadline):
        while True:
            if found := await check():
                return found
            await trio.sleep(0.01)


async def reached(client: httpx.AsyncClient) -> bool:
    """Whether the worker behind ``client`` has rebuilt its plan since `PROBE`
    was added (it answers the probe's status)."""
    return (await client.get("/anything/probe")).status_code == 418


PROBE = {"match": {"path": "/anything/probe"}, "action": {"status": 418}}


async def test_a_budget_is_spent_once_across_workers(redis_url: str) -> None:
    async with two_workers(redis_url) as (first, second):
        posted = await first.post("/faults", json=FAIL_MSG_3)
        assert posted.status_code == 201
        rule_id = posted.json()["id"]
        assert posted.json()["remaining"] == 3
        assert (await first.post("/faults", json=PROBE)).status_code == 201
        await until(5, lambda: reached(second))
        statuses = [
            (await (first, second)[n % 2].get("/anything")).status_code
            for n in range(20)
        ]
        assert statuses == [500] * 3 + [200] * 17
        for client in (first, second):
            view, _ = (await client.get("/faults")).json()["rules"]
            assert (view["fired"], view["remaining"], view["live"]) == (3, 0, False)
            assert view["matched"] == 3
            one = (await client.get(f"/faults/{rule_id}")).json()
            assert one["fired"] == 3


async def test_a_rule_deleted_on_one_worker_stops_on_all(redis_url: str) -> None:
    async with two_workers(redis_url) as (first, second):
        rule = {"match": {"path": "/anything"}, "action": {"status": 503}}
        rule_id = (await first.post("/faults", json=rule)).json()["id"]
        await until(5, lambda: _fails(second))
        assert (await first.delete(f"/faults/{rule_id}")).status_code == 204
        # At once on both: Redis, not the local plans, decides.
        assert (await second.get("/anything")).status_code == 200
        assert (await first.get("/anything")).status_code == 200
        assert (await second.get(f"/faults/{rule_id}")).status_code == 404
        assert (await second.delete(f"/faults/{rule_id}")).status_code == 404
        assert (await second.get("/faults")).json() == {"rules": []}


async def _fails(client: httpx.AsyncClient) -> bool:
    return (await client.get("/anything")).status_code != 200


async def test_clear_by_scope_and_order_across_workers(redis_url: str) -> None:
    async with two_workers(redis_url) as (first, second):
        for scope, status in (("a", 501), ("b", 502), (None, 503)):
            match: dict[str, Any] = {"path": "/anything"}
            if scope is not None:
                match["scope"] = scope
            rule = {"match": match, "action": {"status": status}}
            assert (await first.post("/faults", json=rule)).status_code == 201
        listed = (await second.get("/faults")).json()["rules"]
        assert [r["action"]["status"] for r in listed] == [501, 502, 503]
        only_b = (await second.get("/faults?scope=b")).json()["rules"]
        assert [r["action"]["status"] for r in only_b] == [502]

        async def answers(scope: str) -> int:
            got = await second.get("/anything", headers={"X-Fault-Scope": scope})
            return got.status_code

        await until(5, lambda: _is(answers, "a", 501))
        assert await answers("b") == 502
        assert (await second.delete("/faults?scope=a")).status_code == 204
        assert await answers("a") == 503  # the oldest live rule left fires
        assert await answers("b") == 502
        assert (await first.delete("/faults")).status_code == 204
        assert await answers("b") == 200
        assert (await first.get("/faults")).json() == {"rules": []}


async def _is(answer: Any, scope: str, status: int) -> bool:
    return bool(await answer(scope) == status)


async def test_a_duration_ends_on_the_redis_clock(redis_url: str) -> None:
    async with two_workers(redis_url) as (first, second):
        rule = {
            "match": {"path": "/anything"},
            "action": {"status": 500},
            "duration_seconds": 0.3,
        }
        posted = (await first.post("/faults", json=rule)).json()
        assert 0 < posted["remaining_seconds"] <= 0.3
        assert (await first.get("/anything")).status_code == 500
        await until(5, lambda: _passes(second))
        await until(5, lambda: _passes(first))
        (view,) = (await second.get("/faults")).json()["rules"]
        assert view["live"] is False
        assert view["remaining_seconds"] == 0.0
        assert view["fired"] >= 1


async def _passes(client: httpx.AsyncClient) -> bool:
    return (await client.get("/anything")).status_code == 200


async def test_max_rules_holds_across_workers(redis_url: str) -> None:
    async with two_workers(redis_url, max_fault_rules=2) as (first, second):
        rule = {"match": {"path": "/anything"}, "action": {"status": 500}}
        assert (await first.post("/faults", json=rule)).status_code == 201
        assert (await second.post("/faults", json=rule)).status_code == 201
        full = await first.post("/faults", json=rule)
        assert full.status_code == 409
        assert "at most 2 fault rules" in full.json()["detail"]
        spent = {**rule, "times": 1}
        await first.delete("/faults")
        assert (await first.post("/faults", json=spent)).status_code == 201
        assert (await first.post("/faults", json=rule)).status_code == 201
        assert (await first.get("/anything")).status_code == 500  # spends one
        # The spent rule is forgotten to make room, as in memory.
        assert (await second.post("/faults", json=rule)).status_code == 201
        assert len((await second.get("/faults")).json()["rules"]) == 2


async def test_probability_is_decided_locally_with_the_seed(redis_url: str) -> None:
    async with two_workers(redis_url) as (first, _):
        rule = {
            "match": {"path": "/anything"},
            "action": {"status": 500},
            "probability": 0.5,
            "seed": 7,
        }
        stored = (await first.post("/faults", json=rule)).json()
        assert stored["seed"] == 7
        statuses = [(await first.get("/anything")).status_code for _ in range(40)]
        (view,) = (await first.get("/faults")).json()["rules"]
        assert view["matched"] == 40
        assert view["fired"] == statuses.count(500)
        assert 0 < view["fired"] < 40


async def test_the_fail_modes_stay_apart_from_the_rules(redis_url: str) -> None:
    async with two_workers(redis_url) as (first, second):
        await first.post("/fail/count/2")
        assert (await second.get("/faults")).json() == {"rules": []}
        assert (await second.delete("/faults/fail-count")).status_code == 204
        assert (await first.get("/msg")).status_code == 200
        await first.post("/fail/count/2")
        assert (await second.delete("/faults")).status_code == 204
        assert (await first.get("/msg")).status_code == 200


async def test_the_journal_is_one_across_workers(redis_url: str) -> None:
    async with two_workers(redis_url) as (first, second):
        for n in range(10):
            client = (first, second)[n % 2]
            scope = "s1" if n < 6 else "s2"
            await client.get(f"/anything/{n}", headers={"X-Fault-Scope": scope})

        async def listed(client: httpx.AsyncClient, query: str) -> list[str]:
            entries = (await client.get(f"/requests{query}")).json()["requests"]
            return [entry["path"] for entry in entries]

        async def all_six() -> list[str] | None:
            paths = await listed(first, "?scope=s1")
            return paths if len(paths) == 6 else None

        assert await until(5, all_six) == [f"/anything/{n}" for n in range(6)]
        assert await listed(second, "?scope=s1&limit=2") == [
            "/anything/4",
            "/anything/5",
        ]
        assert len(await listed(second, "?scope=s2")) == 4
        assert (await second.delete("/requests?scope=s1")).status_code == 204
        assert await listed(first, "?scope=s1") == []
        assert len(await listed(first, "?scope=s2")) == 4
        assert (await first.delete("/requests")).status_code == 204
        assert await listed(second, "?scope=s2") == []


async def test_the_journal_keeps_the_newest_journal_size(redis_url: str) -> None:
    async with two_workers(redis_url, journal_size=5) as (first, second):
        for n in range(8):
            await (first, second)[n % 2].get(
                f"/anything/{n}", headers={"X-Fault-Scope": "k"}
            )
        # The newest five of all workers; each worker's own queue is written
        # before its read, the other's within moments.

        async def newest() -> list[str] | None:
            got = (await first.get("/requests?scope=k")).json()["requests"]
            paths = [entry["path"] for entry in got]
            return paths if "/anything/7" in paths else None

        paths = await until(5, newest)
        assert len(paths) == 5
        assert paths[-1] == "/anything/7"


async def test_redis_lost_is_a_503_and_unmatched_requests_need_no_redis(
    tmp_path: Path,
) -> None:
    """Redis stopped: the rules and the journal answer 503, a request no rule
    matches is decided locally (200); Redis back (empty): both workers follow
    the new rules again and the journal records again."""
    redis = start_redis(tmp_path)
    try:
        async with two_workers(redis.url()) as (first, second):
            rule = {"match": {"path": "/anything/x"}, "action": {"status": 500}}
            assert (await first.post("/faults", json=rule)).status_code == 201
            redis.process.terminate()
            redis.process.wait(10)
            assert (await first.get("/anything/y")).status_code == 200
            for answer in (
                await first.get("/anything/x"),
                await first.get("/faults"),
                await first.post("/faults", json=rule),
                await first.delete("/faults"),
                await first.get("/requests"),
                await first.delete("/requests"),
            ):
                assert answer.status_code == 503
                assert answer.json()["detail"].startswith(
                    "State backend unavailable: Redis at"
                )
            redis = start_redis(tmp_path, redis.port)
            await until(10, lambda: _passes_x(second))  # the rule is gone
            assert (await first.post("/faults", json=PROBE)).status_code == 201
            await until(10, lambda: reached(second))
            await second.get("/anything/z", headers={"X-Fault-Scope": "back"})

            async def recorded() -> bool:
                got = (await first.get("/requests?scope=back")).json()["requests"]
                return [entry["path"] for entry in got] == ["/anything/z"]

            await until(10, recorded)
    finally:
        redis.process.kill()
        redis.process.wait()


async def _passes_x(client: httpx.AsyncClient) -> bool:
    return (await client.get("/anything/x")).status_code == 200


async def test_the_memory_default_is_unchanged() -> None:
    app = create_app(ServerSettings(log_level="ERROR"))
    assert isinstance(app.state.rules, MemoryFaultRules)
    assert app.state.rules.plan is app.state.plan
    assert isinstance(app.state.journal_store, MemoryJournalStore)
    assert app.state.journal.forward is None
    assert app.state.redis_rules is None
    async with serve_in_background(ServerSettings(log_level="ERROR")) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            await client.post("/fail/count/1")
            listed = (await client.get("/faults")).json()["rules"]
            assert [rule["id"] for rule in listed] == ["fail-count"]


async def test_a_definition_reads_back_as_the_same_rule() -> None:
    given = FaultRuleIn.model_validate(
        {
            "match": {"method": ["GET", "post"], "path": "/a/*", "scope": "s"},
            "action": {"delay_ms": 5, "jitter_ms": 2},
            "times": 2,
            "duration_seconds": 1.5,
            "probability": 0.25,
            "seed": 3,
        }
    ).to_rule()
    again = FaultRuleIn.model_validate(definition(given)).to_rule(given.id)
    assert definition(again) == definition(given)
    assert (again.match, again.action, again.seed) == (
        given.match,
        given.action,
        given.seed,
    )


async def test_concurrent_checks_on_two_connections_spend_one_budget(
    redis_url: str,
) -> None:
    """One level further down: two `RedisFaultRules` on two connections (two
    workers' worth), 40 checks at once: exactly 5 fire."""
    async with open_redis(redis_url) as one, open_redis(redis_url) as two:
        workers = [RedisFaultRules(c, FaultPlan(10)) for c in (one, two)]
        added = FaultRuleIn.model_validate(
            {"match": {"path": "/x"}, "action": {"status": 500}, "times": 5}
        ).to_rule()
        await workers[0].add(added)
        await workers[1].reload()
        fired: list[str | None] = []

        async def check(worker: RedisFaultRules) -> None:
            rule = await worker.check("GET", "/x", [])
            fired.append(None if rule is None else rule.id)

        async with trio.open_nursery() as nursery:
            for n in range(40):
                nursery.start_soon(check, workers[n % 2])
        assert fired.count(added.id) == 5
        assert fired.count(None) == 35
        (view,) = await workers[1].list()
        assert (view["fired"], view["matched"], view["remaining"]) == (5, 5, 0)
        # Spent: both workers dropped it from their index, no round trip left.
        assert [w.plan.matching("GET", "/x", []) for w in workers] == [[], []]


async def test_journal_batches_from_two_connections(redis_url: str) -> None:
    async with open_redis(redis_url) as one, open_redis(redis_url) as two:
        journals = [RedisJournal(c, 50) for c in (one, two)]
        for n in range(60):
            journals[n % 2].record(
                JournalEntry(
                    at=float(n),
                    method="GET",
                    path=f"/{n}",
                    query="",
                    request_id=str(n),
                    scope=None if n % 3 else "",
                    status=200,
                    outcome="ok",
                    duration_ms=1.0,
                )
            )
        assert [len(j) for j in journals] == [30, 30]
        async with trio.open_nursery() as nursery:
            for journal in journals:
                nursery.start_soon(journal.flush)
        assert [len(j) for j in journals] == [0, 0]
        entries = await journals[0].entries()
        assert len(entries) == 50  # the stream keeps the newest journal size
        assert [e.at for e in entries] == sorted(e.at for e in entries)
        empty_scope = await journals[1].entries("")  # "" is a scope, not none
        assert {e.scope for e in empty_scope} == {""}
        await journals[1].clear("")
        assert {e.scope for e in await journals[0].entries()} == {None}
