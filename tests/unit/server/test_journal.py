"""RequestJournal: bounded, scoped, on the server's clock; and over the app."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from trio_resilience.server import ServerSettings, create_app
from trio_resilience.server._journal import JournalEntry, RequestJournal


def entry(path: str, scope: str | None = None, at: float = 0.0) -> JournalEntry:
    return JournalEntry(
        at=at,
        method="GET",
        path=path,
        query="",
        request_id="r",
        scope=scope,
        status=200,
        outcome="ok",
        duration_ms=1.0,
    )


def test_ring_buffer_drops_the_oldest() -> None:
    """At most `size` entries are kept, the oldest dropped first."""
    journal = RequestJournal(3)
    for n in range(5):
        journal.record(entry(f"/{n}"))
    assert [e.path for e in journal.entries()] == ["/2", "/3", "/4"]
    assert len(journal) == 3 == journal.size


def test_scope_limit_and_clear() -> None:
    """Entries filter by scope, limit keeps the newest, clear(scope) spares others."""
    journal = RequestJournal(10)
    for n, scope in enumerate(["a", "b", "a", None, "a"]):
        journal.record(entry(f"/{n}", scope))
    assert [e.path for e in journal.entries("a")] == ["/0", "/2", "/4"]
    assert [e.path for e in journal.entries("a", limit=2)] == ["/2", "/4"]
    assert [e.path for e in journal.entries(limit=1)] == ["/4"]
    journal.clear("a")
    assert [e.path for e in journal.entries()] == ["/1", "/3"]
    journal.clear()
    assert journal.entries() == []


def test_size_is_validated() -> None:
    """A journal holds at least one entry."""
    with pytest.raises(ValueError, match=r"^size must be >= 1$"):
        RequestJournal(0)


async def test_wall_time_keeps_trio_gaps_exact(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One offset for the journal's life: gaps between entries are trio gaps."""
    journal = RequestJournal(5)
    first = journal.wall_time(trio.current_time())
    await trio.sleep(1.5)
    second = journal.wall_time(trio.current_time())
    assert second - first == 1.5


def test_each_trio_run_takes_its_own_offset() -> None:
    """A journal used in a second trio.run (whose clock starts elsewhere, here at
    0 then at 10,000 s) still gives Unix seconds of now."""
    journal = RequestJournal(5)

    async def stamp() -> float:
        return journal.wall_time(trio.current_time())

    first = trio.run(stamp, clock=trio.testing.MockClock())
    clock = trio.testing.MockClock()
    clock.jump(10_000)
    second = trio.run(stamp, clock=clock)
    now = time.time()
    assert now - 5 < first <= second <= now


async def test_requests_are_recorded_and_served(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """GET /requests lists finished requests with scope; DELETE clears a scope."""
    app = create_app(ServerSettings(enable_docs=False))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await client.get("/msg", headers={"X-Fault-Scope": "t1", "X-Request-ID": "a"})
        await trio.sleep(2)
        await client.get("/msg", headers={"X-Fault-Scope": "t1", "X-Request-ID": "a"})
        await client.get("/msg?delay=0", headers={"X-Fault-Scope": "t2"})
        response = await client.get("/requests", query_string={"scope": "t1"})
        assert response.status_code == 200
        seen = (await response.get_json())["requests"]
        assert [(e["path"], e["status"], e["scope"]) for e in seen] == [
            ("/msg", 200, "t1"),
            ("/msg", 200, "t1"),
        ]
        assert seen[1]["at"] - seen[0]["at"] == pytest.approx(2.0)
        assert seen[0]["request_id"] == "a"
        assert seen[0]["fault"] is None
        other = await client.get("/requests", query_string={"scope": "t2"})
        assert (await other.get_json())["requests"][0]["query"] == "delay=0"
        cleared = await client.delete("/requests", query_string={"scope": "t1"})
        assert cleared.status_code == 204
        left = await (
            await client.get("/requests", query_string={"scope": "t1"})
        ).get_json()
        assert left == {"requests": []}
        bad = await client.get("/requests", query_string={"limit": "0"})
        assert bad.status_code == 422


def test_entries_come_in_arrival_order() -> None:
    """A long request recorded after a later short one is listed first."""
    journal = RequestJournal(5)
    journal.record(entry("/short", at=2.0))
    journal.record(entry("/long", at=1.0))
    journal.record(entry("/next", at=3.0))
    assert [e.path for e in journal.entries()] == ["/long", "/short", "/next"]
    assert [e.path for e in journal.entries(limit=2)] == ["/long", "/next"]
