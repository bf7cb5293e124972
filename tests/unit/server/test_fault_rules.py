"""FaultPlan: which rule fires, budgets on virtual time, the index, the bounds."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience.server._fault_rules import (
    DelayAction,
    FaultPlan,
    FaultRule,
    Match,
    StatusAction,
    TooManyRules,
)

FAIL = StatusAction(503)
Headers = tuple[tuple[bytes, bytes], ...]


def rule(rule_id: str, match: Match | None = None, **budget: object) -> FaultRule:
    return FaultRule(id=rule_id, match=match or Match(), action=FAIL, **budget)  # type: ignore[arg-type]


def fired(
    plan: FaultPlan, method: str = "GET", path: str = "/msg", headers: Headers = ()
) -> str | None:
    found = plan.check(method, path, headers)
    return None if found is None else found.id


async def test_oldest_matching_rule_fires_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(10)
    plan.add(rule("any"))
    plan.add(rule("msg", Match(path="/msg")))
    assert fired(plan) == "any"
    plan.remove("any")
    assert fired(plan) == "msg"
    assert fired(plan, path="/other") is None


async def test_times_are_used_up_and_a_spent_rule_stays_listed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(10)
    plan.add(rule("twice", times=2))
    plan.add(rule("after", Match(path="/msg")))
    assert [fired(plan) for _ in range(3)] == ["twice", "twice", "after"]
    stored = {r.id: r.to_json(plan.now()) for r in plan.rules()}
    assert stored["twice"]["remaining"] == 0
    assert stored["twice"]["live"] is False
    assert (stored["twice"]["matched"], stored["twice"]["fired"]) == (2, 2)
    assert stored["after"]["remaining"] is None


async def test_duration_ends_exactly_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(10)
    start = trio.current_time()
    plan.add(rule("short", duration_seconds=2.5))
    await trio.sleep(2.5 - 1e-9)
    assert fired(plan) == "short"
    assert plan.rules()[0].to_json(plan.now())["remaining_seconds"] == pytest.approx(
        1e-9, abs=1e-12
    )
    await trio.sleep_until(start + 2.5)
    assert fired(plan) is None
    assert plan.rules()[0].to_json(plan.now())["remaining_seconds"] == 0.0


async def test_a_seed_gives_the_same_sequence_and_declines_pass_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """probability < 1 with one seed: one sequence; a rule that declines by chance
    lets the next matching rule decide."""

    def sequence() -> list[str | None]:
        plan = FaultPlan(10)
        plan.add(rule("coin", probability=0.5, seed=7))
        plan.add(rule("fallback", Match(path="/msg"), times=3))
        return [fired(plan) for _ in range(20)]

    first = sequence()
    assert first == sequence()
    assert first.count("fallback") == 3
    assert 4 <= first.count("coin") <= 16
    assert first.count(None) == 20 - 3 - first.count("coin")


async def test_jitter_comes_from_the_rules_generator(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def jitters() -> list[float]:
        delayed = FaultRule(id="d", match=Match(), action=DelayAction(10, 50), seed=3)
        return [delayed.jitter_seconds(50) for _ in range(5)]

    values = jitters()
    assert values == jitters()
    assert all(0 <= value <= 0.05 for value in values)
    assert len(set(values)) == 5


async def test_globs_methods_and_headers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(10)
    plan.add(rule("glob", Match(path="/api/*/items/?")))
    plan.add(rule("writes", Match(methods=frozenset({"POST", "PUT"}))))
    plan.add(rule("header", Match(headers=((b"x-flaky", b"yes"),))))
    assert fired(plan, path="/api/v1/items/3") == "glob"
    assert fired(plan, path="/api/v1/items/33") is None
    assert fired(plan, path="/api/v1/nested/x/items/3") == "glob"  # * crosses /
    assert fired(plan, "PUT", "/anything") == "writes"
    assert fired(plan, "GET", "/x", ((b"X-Flaky", b"yes"),)) == "header"
    assert fired(plan, "GET", "/x", ((b"x-flaky", b"Yes"),)) is None


async def test_scopes_keep_rules_apart(autojump_clock: trio.testing.MockClock) -> None:
    """A scoped rule sees only its scope's requests; an unscoped one sees all."""
    plan = FaultPlan(10)
    plan.add(rule("a", Match(scope="a")))
    in_a = ((b"x-fault-scope", b"a"),)
    in_b = ((b"x-fault-scope", b"b"),)
    assert fired(plan, headers=in_a) == "a"
    assert fired(plan, headers=in_b) is None
    assert fired(plan) is None
    plan.add(rule("everyone"))
    assert fired(plan, headers=in_b) == "everyone"
    assert fired(plan, headers=in_a) == "a"
    plan.clear("a")
    assert [r.id for r in plan.rules()] == ["everyone"]


async def test_a_full_plan_forgets_spent_rules_then_refuses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(2)
    plan.add(rule("spent", times=1))
    plan.add(rule("live", Match(path="/x")))
    assert fired(plan) == "spent"
    plan.add(rule("new"))
    assert [r.id for r in plan.rules()] == ["live", "new"]
    with pytest.raises(TooManyRules, match=r"^at most 2 fault rules can be live"):
        plan.add(rule("one too many"))
    assert len(plan) == 2


async def test_pinned_rules_come_first_do_not_count_and_survive_being_spent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(1)
    plan.add(rule("user"))
    pinned = plan.add(rule("pinned", times=1, pinned=True))
    assert len(plan) == 1
    assert fired(plan) == "pinned"
    assert fired(plan) == "user"
    assert [r.id for r in plan.rules()] == ["user"]  # listed only while live
    plan.rearm(pinned, 1, None)
    assert fired(plan) == "pinned"
    assert pinned.matched == 3  # checked on every request, fired or not
    plan.clear()
    assert plan.get("pinned") is pinned
    assert fired(plan) is None


async def test_an_unknown_rule_cannot_be_removed_and_ids_are_unique(
    autojump_clock: trio.testing.MockClock,
) -> None:
    plan = FaultPlan(10)
    assert plan.remove("nope") is False
    plan.add(rule("x"))
    with pytest.raises(ValueError, match=r"^a fault rule with id 'x' exists already$"):
        plan.add(rule("x"))


MODULE_PLAN = FaultPlan(10)


@pytest.mark.parametrize("run", [1, 2])
async def test_a_module_level_plan_starts_empty_in_each_test(
    run: int, autojump_clock: trio.testing.MockClock
) -> None:
    """Each pytest-trio test is its own trio.run: the rules of the last one (and
    their deadlines on its clock) are gone."""
    assert MODULE_PLAN.rules() == []
    MODULE_PLAN.add(rule(f"from run {run}", duration_seconds=60))
    assert fired(MODULE_PLAN) == f"from run {run}"


def test_two_trio_runs_do_not_share_rules() -> None:
    plan = FaultPlan(10)

    async def add_and_fire() -> list[str | None]:
        before = fired(plan)
        plan.add(rule("r", duration_seconds=5))
        return [before, fired(plan)]

    assert trio.run(add_and_fire) == [None, "r"]
    assert trio.run(add_and_fire) == [None, "r"]


async def test_the_oldest_rule_wins_across_exact_glob_and_wide_rules(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The index keeps exact paths, globs by first segment and the rest apart; the
    order between them is still the age of the rules."""
    plan = FaultPlan(10)
    plan.add(rule("glob", Match(path="/api/*"), times=1))
    plan.add(rule("wide", Match(path="/a?i/*"), times=1))
    plan.add(rule("exact", Match(path="/api/v1"), times=1))
    plan.add(rule("any", times=1))
    assert [fired(plan, path="/api/v1") for _ in range(5)] == [
        "glob",
        "wide",
        "exact",
        "any",
        None,
    ]
    plan.add(rule("star", Match(path="/*")))
    assert fired(plan, path="/") == "star"
    assert fired(plan, path="/apix/1") == "star"  # not taken for /api/*'s segment
