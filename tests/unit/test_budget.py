"""RetryBudget's arithmetic on virtual time, its window, its run binding, and its
use by retry loops."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience import Backoff, RetryBudget, retry_context


async def test_the_floor_alone_allows_min_per_second_times_the_window(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """ratio 0, 1/s over 10 s: ten retries, the eleventh refused; once the
    window has passed they are allowed again."""
    budget = RetryBudget(ratio=0, min_per_second=1, window=10)
    assert [budget.try_withdraw() for _ in range(11)] == [True] * 10 + [False]
    await trio.sleep(9.99)
    assert budget.try_withdraw() is False  # still the same window
    await trio.sleep(0.01)
    assert budget.try_withdraw() is True
    stats = budget.statistics()
    assert (stats.retries, stats.refused, stats.first_attempts) == (11, 2, 0)
    assert stats.balance == pytest.approx(9)


async def test_each_first_attempt_deposits_the_ratio(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """ratio 0.5, no floor: four first attempts pay for two retries."""
    budget = RetryBudget(ratio=0.5, min_per_second=0)
    assert budget.try_withdraw() is False
    for _ in range(4):
        budget.deposit()
    assert budget.statistics().balance == pytest.approx(2)
    assert [budget.try_withdraw() for _ in range(3)] == [True, True, False]
    budget.deposit()
    budget.deposit()
    assert budget.try_withdraw() is True


async def test_deposits_leave_the_window_bucket_by_bucket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A deposit made at t=0.5 counts until t=10 (the window's ten 1 s buckets),
    not at t=10."""
    budget = RetryBudget(ratio=1, min_per_second=0, window=10)
    await trio.sleep(0.5)
    budget.deposit()
    await trio.sleep(9.49)
    assert budget.statistics().balance == 1
    await trio.sleep(0.01)
    assert budget.statistics().balance == 0
    assert budget.try_withdraw() is False


def test_a_new_run_starts_with_a_full_budget() -> None:
    """Exhausted in one trio.run, full in the next (its clock starts over)."""
    budget = RetryBudget(ratio=0, min_per_second=0.1, window=10)

    async def spend() -> list[bool]:
        return [budget.try_withdraw() for _ in range(2)]

    for _ in range(2):
        assert trio.run(spend, clock=trio.testing.MockClock()) == [True, False]
    assert budget.statistics().balance is None  # outside a run: no clock


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"ratio": -0.1}, ValueError, r"^ratio must be >= 0$"),
        ({"min_per_second": -1}, ValueError, r"^min_per_second must be >= 0$"),
        ({"window": 0}, ValueError, r"^window must be > 0$"),
        ({"ratio": "0.2"}, TypeError, r"^ratio must be a number, not str$"),
    ],
)
def test_bad_settings_are_refused(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RetryBudget(**kwargs)  # type: ignore[arg-type]


async def test_retry_loops_share_one_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Floor of one retry: the first loop retries once; the second loop's retry
    is refused, so it re-raises at its first failure, without sleeping."""
    budget = RetryBudget(ratio=0, min_per_second=0.1, window=10)
    policy = retry_context(
        on=ValueError, attempts=5, backoff=Backoff(initial=1, jitter=False),
        budget=budget,
    )  # fmt: skip
    tries: list[tuple[str, int, float]] = []

    async def run(name: str) -> None:
        async for attempt in policy:
            with attempt:
                tries.append((name, attempt.num, trio.current_time()))
                raise ValueError(name)

    for name in ("a", "b"):
        with pytest.raises(ValueError, match=name):
            await run(name)
    assert tries == [("a", 1, 0.0), ("a", 2, 1.0), ("b", 1, 1.0)]
    stats = budget.statistics()
    assert (stats.first_attempts, stats.retries, stats.refused) == (2, 1, 2)
