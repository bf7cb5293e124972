"""acquire_on_behalf_of_within: one way to take a slot within a time limit."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import trio
import trio.testing

from trio_resilience.limiters import acquire_on_behalf_of_within


async def test_free_slot_is_taken_without_a_checkpoint(autojump_clock: object) -> None:
    """A free slot is taken at once; the task is not rescheduled to get it."""
    limiter = trio.CapacityLimiter(1)
    borrower = object()
    with trio.CancelScope() as scope:
        scope.cancel()  # a checkpoint would raise Cancelled
        assert await acquire_on_behalf_of_within(limiter, borrower, 1.0)
    assert limiter.borrowed_tokens == 1
    limiter.release_on_behalf_of(borrower)


async def test_gives_up_after_max_wait(autojump_clock: object) -> None:
    """With every slot taken it waits exactly max_wait, then returns False."""
    limiter = trio.CapacityLimiter(1)
    limiter.acquire_on_behalf_of_nowait("holder")
    start = trio.current_time()
    assert not await acquire_on_behalf_of_within(limiter, object(), 2.5)
    assert trio.current_time() - start == 2.5
    assert limiter.statistics().tasks_waiting == 0
    assert not await acquire_on_behalf_of_within(limiter, object(), 0)
    assert trio.current_time() - start == 2.5


async def test_gets_a_slot_freed_while_waiting(autojump_clock: object) -> None:
    """A slot released during the wait goes to the waiter, first come first served."""
    limiter = trio.CapacityLimiter(1)
    limiter.acquire_on_behalf_of_nowait("holder")
    got: list[str] = []

    async def wait(name: str) -> None:
        if await acquire_on_behalf_of_within(limiter, name, math.inf):
            got.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(wait, "second")
        await trio.sleep(1)
        limiter.release_on_behalf_of("holder")
        await trio.sleep(1)
        assert got == ["first"]
        limiter.release_on_behalf_of("first")
    assert got == ["first", "second"]


async def test_outer_cancellation_propagates_holding_nothing(
    autojump_clock: object,
) -> None:
    """Cancelled while waiting: Cancelled propagates and no slot is held."""
    limiter = trio.CapacityLimiter(1)
    limiter.acquire_on_behalf_of_nowait("holder")
    with trio.move_on_after(1) as scope:
        await acquire_on_behalf_of_within(limiter, object(), 10)
    assert scope.cancelled_caught
    assert limiter.borrowed_tokens == 1
    assert limiter.statistics().tasks_waiting == 0


async def test_waiting_is_entered_only_while_the_caller_waits(
    autojump_clock: object,
) -> None:
    """``waiting()`` is not entered for a free slot; it is for a wait, however the
    wait ends (a slot, max_wait, max_wait 0, a cancellation), and always left."""
    events: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def waiting() -> Iterator[None]:
        events.append(("enter", trio.current_time()))
        try:
            yield
        finally:
            events.append(("exit", trio.current_time()))

    limiter = trio.CapacityLimiter(1)
    assert await acquire_on_behalf_of_within(limiter, "holder", 1.0, waiting)
    assert events == []
    assert not await acquire_on_behalf_of_within(limiter, object(), 0, waiting)
    assert not await acquire_on_behalf_of_within(limiter, object(), 2.0, waiting)
    with trio.move_on_after(1.0):
        await acquire_on_behalf_of_within(limiter, object(), math.inf, waiting)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(acquire_on_behalf_of_within, limiter, "next", 9.0, waiting)
        await trio.sleep(0.5)
        limiter.release_on_behalf_of("holder")
    assert events == [
        ("enter", 0.0), ("exit", 0.0),
        ("enter", 0.0), ("exit", 2.0),
        ("enter", 2.0), ("exit", 3.0),
        ("enter", 3.0), ("exit", 3.5),
    ]  # fmt: skip
    assert limiter.borrowed_tokens == 1
