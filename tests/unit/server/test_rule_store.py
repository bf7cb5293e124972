"""The routes' one interface in memory (`MemoryFaultRules`, `MemoryJournalStore`),
and the plan's hooks the Redis backend uses (`matching`, `retire`, `forward`)."""

from __future__ import annotations

import trio
import trio.testing

from trio_resilience.server._fault_rules import (
    FaultPlan,
    FaultRule,
    Match,
    StatusAction,
)
from trio_resilience.server._faults import FailureInjector
from trio_resilience.server._journal import JournalEntry, RequestJournal
from trio_resilience.server._rule_store import MemoryFaultRules, MemoryJournalStore


def rule(rule_id: str, path: str = "/a", times: int | None = None) -> FaultRule:
    return FaultRule(
        id=rule_id, match=Match(path=path), action=StatusAction(500), times=times
    )


async def test_memory_rules_serve_the_plan(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(10)
    FailureInjector(plan)  # pinned modes, off: not listed
    rules = MemoryFaultRules(plan)
    view = await rules.add(rule("one", times=1))
    assert (view["id"], view["remaining"], view["fired"]) == ("one", 1, 0)
    assert plan.check("GET", "/a", []) is not None
    listed = await rules.list()
    assert [(v["id"], v["fired"], v["live"]) for v in listed] == [("one", 1, False)]
    assert await rules.get("fail-count") is None
    assert await rules.get("nope") is None
    assert (await rules.get("one") or {})["matched"] == 1
    assert await rules.remove("one")
    assert not await rules.remove("one")
    await rules.add(rule("two"))
    await rules.clear()
    assert await rules.list() == []


async def test_matching_decides_nothing_and_retire_unindexes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(10)
    first, second = plan.add(rule("first")), plan.add(rule("second", "/a*"))
    plan.add(rule("other", "/b"))
    assert plan.matching("GET", "/a", []) == [first, second]
    assert (first.matched, second.matched) == (0, 0)
    plan.retire(first)
    assert plan.matching("GET", "/a", []) == [second]
    assert plan.get("first") is first  # still stored, still listed
    assert plan.check("GET", "/a", []) is second
    assert plan.matching("GET", "/c", []) == []


async def test_a_forwarded_journal_keeps_nothing_itself(
    autojump_clock: trio.testing.MockClock,
) -> None:
    journal = RequestJournal(5)
    store = MemoryJournalStore(journal)
    entry = JournalEntry(
        at=1.0,
        method="GET",
        path="/x",
        query="",
        request_id="r",
        scope="s",
        status=200,
        outcome="ok",
        duration_ms=1.0,
    )
    journal.record(entry)
    assert await store.entries("s") == [entry]
    sent: list[JournalEntry] = []
    journal.forward = sent.append
    journal.record(entry)
    assert sent == [entry]
    assert len(journal) == 1
    await store.clear("s")
    assert await store.entries() == []
