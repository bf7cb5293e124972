"""FailureInjector: count and duration modes on trio time, and their totals.

The modes are pinned rules of a `FaultPlan`; a request "fails" here when the plan's
check for ``GET /msg`` fires one of them.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience.server._fault_rules import FaultPlan
from trio_resilience.server._faults import FailureInjector, FailureStatus


class Injector(FailureInjector):
    """An injector on a plan of its own, checked as ``GET /msg``."""

    def __init__(self) -> None:
        self.plan = FaultPlan(10)
        super().__init__(self.plan)

    def should_fail(self) -> bool:
        return self.plan.check("GET", "/msg", []) is not None


def outcomes(faults: Injector, n: int) -> list[bool]:
    return [faults.should_fail() for _ in range(n)]


async def test_nothing_fails_by_default(autojump_clock: trio.testing.MockClock) -> None:
    """A new injector lets every request through."""
    faults = Injector()
    assert outcomes(faults, 3) == [False, False, False]
    assert (await faults.status()) == FailureStatus(
        count_remaining=0,
        duration_remaining_seconds=0.0,
        failing=False,
        requests_seen=3,
        failures_injected=0,
    )


async def test_count_mode_fails_exactly_n(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """fail_next(n) fails the next n requests, then stops."""
    faults = Injector()
    await faults.fail_next(3)
    assert outcomes(faults, 5) == [True, True, True, False, False]
    assert (await faults.status()).failures_injected == 3


async def test_count_is_replaced_not_added(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Setting a count replaces the previous one."""
    faults = Injector()
    await faults.fail_next(5)
    await faults.fail_next(1)
    assert outcomes(faults, 2) == [True, False]


async def test_duration_mode_ends_exactly_on_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """fail_for(s) fails every request until exactly s seconds later."""
    faults = Injector()
    await faults.fail_for(2.5)
    assert outcomes(faults, 4) == [True] * 4
    await trio.sleep(2.25)
    assert (await faults.status()).duration_remaining_seconds == 0.25
    assert faults.should_fail()
    await trio.sleep(0.25)
    assert not faults.should_fail()
    assert (await faults.status()).failing is False


async def test_modes_combine_and_count_is_used_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Either mode fails a request; the count keeps its budget past the duration."""
    faults = Injector()
    await faults.fail_for(1)
    await faults.fail_next(2)
    assert outcomes(faults, 2) == [True, True]
    assert (await faults.status()).count_remaining == 0
    assert faults.should_fail()  # still inside the duration
    await trio.sleep(1)
    assert not faults.should_fail()


async def test_reset_clears_modes_keeps_totals(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """reset() turns both modes off; requests_seen and failures_injected remain."""
    faults = Injector()
    await faults.fail_next(10)
    await faults.fail_for(100)
    outcomes(faults, 2)
    await faults.reset()
    assert not faults.should_fail()
    status = await faults.status()
    assert (status.count_remaining, status.duration_remaining_seconds) == (0, 0.0)
    assert (status.requests_seen, status.failures_injected) == (3, 2)


async def test_zero_turns_a_mode_off(autojump_clock: trio.testing.MockClock) -> None:
    """fail_next(0) and fail_for(0) switch their mode off."""
    faults = Injector()
    await faults.fail_next(3)
    await faults.fail_for(3)
    await faults.fail_next(0)
    await faults.fail_for(0)
    assert not faults.should_fail()


async def test_out_of_range_values(autojump_clock: trio.testing.MockClock) -> None:
    """Negative or absurd values are refused."""
    faults = Injector()
    with pytest.raises(ValueError, match=r"^count must be between 0 and 1000000$"):
        await faults.fail_next(-1)
    with pytest.raises(ValueError, match=r"^count must be between 0 and 1000000$"):
        await faults.fail_next(1_000_001)
    with pytest.raises(ValueError, match=r"^seconds must be between 0 and 86400$"):
        await faults.fail_for(86_401)
