"""open_service_nursery: who wins when the block, its service tasks, or both fail."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience._service import open_service_nursery

NOTE = "a background task failed too: ValueError('background')"


async def fail_after(seconds: float, exc: BaseException) -> None:
    await trio.sleep(seconds)
    raise exc


async def fail_when_cancelled(exc: BaseException) -> None:
    try:
        await trio.sleep_forever()
    finally:
        raise exc  # a cleanup that fails: the case under test


def no_nurseries_left(before: list[trio.Nursery]) -> bool:
    return trio.lowlevel.current_task().child_nurseries == before


async def test_only_the_block_fails(autojump_clock: trio.testing.MockClock) -> None:
    """The block's exception propagates as itself; service tasks are cancelled."""
    before = list(trio.lowlevel.current_task().child_nurseries)
    error = KeyError("mine")

    async def block() -> None:
        async with open_service_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep(1)
            raise error

    with pytest.raises(KeyError) as info:
        await block()
    assert info.value is error
    assert info.value.__context__ is None
    assert not hasattr(info.value, "__notes__")
    assert trio.current_time() == 1.0
    assert no_nurseries_left(before)


async def test_only_a_background_task_fails(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A service task's failure cancels the block and propagates in a group."""

    async def block() -> None:
        async with open_service_nursery() as nursery:
            nursery.start_soon(fail_after, 1, ValueError("background"))
            await trio.sleep(10)

    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match=r"^background$")):
        await block()
    assert trio.current_time() == 1.0


async def test_block_fails_and_a_task_fails_while_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The block's exception wins; the background group is its context and a note."""

    async def block() -> None:
        async with open_service_nursery() as nursery:
            nursery.start_soon(fail_when_cancelled, ValueError("background"))
            await trio.sleep(1)
            raise KeyError("mine")

    with pytest.raises(KeyError) as info:
        await block()
    context = info.value.__context__
    assert isinstance(context, ExceptionGroup)
    assert pytest.RaisesGroup(ValueError).matches(context)
    assert info.value.__notes__ == [NOTE]


async def test_block_fails_while_cancelled_by_a_failed_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A block that fails in its cleanup after a task failed raises its own error."""

    async def block() -> None:
        async with open_service_nursery() as nursery:
            nursery.start_soon(fail_after, 1, ValueError("background"))
            try:
                await trio.sleep(10)
            finally:
                raise KeyError("mine")

    with pytest.raises(KeyError) as info:
        await block()
    assert pytest.RaisesGroup(ValueError).matches(info.value.__context__)
    # the Cancelled the block was handling is kept, one link further down
    assert isinstance(info.value.__context__.__context__, trio.Cancelled)
    assert info.value.__notes__ == [NOTE]
    assert trio.current_time() == 1.0


async def test_block_error_keeps_its_own_context(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An exception raised while handling another keeps that one in its chain."""

    async def block() -> None:
        async with open_service_nursery() as nursery:
            nursery.start_soon(fail_when_cancelled, ValueError("background"))
            try:
                raise OSError("first")
            except OSError:
                raise KeyError("mine")  # noqa: B904

    with pytest.raises(KeyError) as info:
        await block()
    assert not info.value.__suppress_context__
    assert pytest.RaisesGroup(ValueError).matches(info.value.__context__)
    assert isinstance(info.value.__context__.__context__, OSError)


async def test_block_group_with_cancelled_loses_only_the_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A block's group wins over a task failure, less the Cancelled the task caused."""

    async def block() -> None:
        async with open_service_nursery() as service:
            service.start_soon(fail_after, 1, ValueError("background"))
            async with trio.open_nursery() as inner:
                inner.start_soon(trio.sleep_forever)
                inner.start_soon(fail_when_cancelled, KeyError("mine"))

    with pytest.RaisesGroup(KeyError) as info:
        await block()
    assert pytest.RaisesGroup(ValueError).matches(info.value.__context__)
    assert info.value.__notes__ == [NOTE]


async def test_block_cancelled_from_outside(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An outer cancellation propagates (to its scope); service tasks end too."""
    before = list(trio.lowlevel.current_task().child_nurseries)
    with trio.move_on_after(2) as outside:
        async with open_service_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            await trio.sleep_forever()
    assert outside.cancelled_caught
    assert trio.current_time() == 2.0
    assert no_nurseries_left(before)


async def test_task_failing_while_cancelled_from_outside_is_not_lost(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A service task failing during an outer cancellation is raised, as trio does."""
    with pytest.RaisesGroup(ValueError):
        with trio.move_on_after(2):
            async with open_service_nursery() as nursery:
                nursery.start_soon(fail_when_cancelled, ValueError("background"))
                await trio.sleep_forever()
    assert trio.current_time() == 2.0


async def test_keyboard_interrupt_in_the_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KeyboardInterrupt from the block propagates as itself."""

    async def block() -> None:
        async with open_service_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await block()


async def test_keyboard_interrupt_in_the_block_keeps_a_task_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KeyboardInterrupt from the block wins over a task failure, which is attached."""

    async def block() -> None:
        async with open_service_nursery() as nursery:
            nursery.start_soon(fail_when_cancelled, ValueError("background"))
            await trio.sleep(1)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as info:
        await block()
    assert pytest.RaisesGroup(ValueError).matches(info.value.__context__)
    assert info.value.__notes__ == [NOTE]


async def test_keyboard_interrupt_in_a_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KeyboardInterrupt from a service task propagates in a group."""

    async def block() -> None:
        async with open_service_nursery() as nursery:
            nursery.start_soon(fail_after, 1, KeyboardInterrupt())
            await trio.sleep_forever()

    with pytest.RaisesGroup(KeyboardInterrupt):
        await block()


async def test_keyboard_interrupt_in_a_task_is_never_demoted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A task's KeyboardInterrupt with a failing block: one group holding both."""

    async def block() -> None:
        async with open_service_nursery() as nursery:
            nursery.start_soon(fail_when_cancelled, KeyboardInterrupt())
            raise KeyError("mine")

    with pytest.RaisesGroup(KeyError, KeyboardInterrupt):
        await block()


async def test_a_clean_block_leaves_nothing_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving the block cancels and awaits the service tasks, raising nothing."""
    before = list(trio.lowlevel.current_task().child_nurseries)
    async with open_service_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever)
        await trio.sleep(1)
    assert trio.current_time() == 1.0
    assert no_nurseries_left(before)


async def test_a_task_raising_a_stray_cancelled_cancels_only_the_nursery(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A task's stray Cancelled ends the block, as in trio, and leaks no Cancelled."""

    async def stray() -> None:
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                await trio.sleep(1)
            except trio.Cancelled as exc:
                caught = exc
        await trio.sleep(1)
        raise caught

    reached_the_end = False
    try:
        async with open_service_nursery() as nursery:
            nursery.start_soon(stray)
            await trio.sleep(10)
            reached_the_end = True
    except trio.Cancelled as leaked:  # pytest-trio would let it pass silently
        raise AssertionError("a Cancelled leaked out of the block") from leaked
    assert not reached_the_end
    assert trio.current_time() == 1.0
    await trio.sleep(1)  # not cancelled: nothing around the block was
    assert trio.current_time() == 2.0


async def test_drain_for_lets_services_end_by_themselves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With drain_for, a service told to stop on exit finishes its work in time."""
    stop = trio.Event()
    finished: list[float] = []

    async def service() -> None:
        await stop.wait()
        await trio.sleep(2)  # draining
        finished.append(trio.current_time())

    async with open_service_nursery(drain_for=5) as nursery:
        nursery.start_soon(service)
        stop.set()
    assert finished == [2.0]
    assert trio.current_time() == 2.0


async def test_drain_for_cancels_a_service_that_overstays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A service still running drain_for seconds after the block is cancelled then."""
    async with open_service_nursery(drain_for=5) as nursery:
        nursery.start_soon(trio.sleep_forever)
    assert trio.current_time() == 5.0


async def test_drain_for_keeps_the_block_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The block's own exception still propagates as itself after the drain."""

    async def block() -> None:
        async with open_service_nursery(drain_for=5) as nursery:
            nursery.start_soon(trio.sleep, 1)
            raise KeyError("mine")

    with pytest.raises(KeyError, match="mine"):
        await block()
    assert trio.current_time() == 1.0
