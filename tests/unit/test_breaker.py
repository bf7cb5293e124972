"""CircuitBreaker: every transition at an exact trio time, probes, hooks, misuse."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from trio_resilience import (
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitBreakerTicket,
    CircuitState,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Boom(Exception):
    pass


async def fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(Boom):
        async with breaker:
            raise Boom


async def succeed(breaker: CircuitBreaker) -> None:
    async with breaker:
        await trio.lowlevel.checkpoint()


async def open_breaker(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        await fail(breaker)
    assert breaker.state is OPEN


def test_defaults() -> None:
    """Defaults: 5 failures, 30 s recovery, one probe, starts CLOSED."""
    breaker = CircuitBreaker()
    assert breaker.failure_threshold == 5
    assert breaker.recovery_timeout == 30.0
    assert breaker.half_open_max_calls == 1
    assert breaker.name is None


async def test_starts_closed(autojump_clock: trio.testing.MockClock) -> None:
    """A new breaker is CLOSED and lets calls through."""
    breaker = CircuitBreaker()
    assert breaker.state is CLOSED
    await succeed(breaker)
    assert breaker.state is CLOSED


async def test_opens_after_threshold_consecutive_failures(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """failure_threshold consecutive failures open the breaker, not one fewer."""
    breaker = CircuitBreaker(failure_threshold=3)
    await fail(breaker)
    await fail(breaker)
    assert breaker.state is CLOSED
    await fail(breaker)
    assert breaker.state is OPEN


async def test_success_resets_the_failure_streak(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A success while CLOSED starts the failure count again."""
    breaker = CircuitBreaker(failure_threshold=3)
    for _ in range(3):
        await fail(breaker)
        await fail(breaker)
        await succeed(breaker)
    assert breaker.state is CLOSED
    assert breaker.statistics().consecutive_failures == 0


async def test_open_fails_fast_with_time_until_probe(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """OPEN rejects without running the block and says when a probe is allowed."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30.0)
    await trio.sleep(5)
    await fail(breaker)
    await trio.sleep(10)
    ran = False
    with pytest.raises(CircuitBreakerOpenError) as info:
        async with breaker:
            ran = True
    assert not ran
    assert info.value.retry_after == 20.0
    assert info.value.state is OPEN
    assert "Circuit breaker is OPEN" in str(info.value)
    assert trio.current_time() == 15.0


async def test_half_open_exactly_after_recovery_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """OPEN turns HALF_OPEN at opened_at + recovery_timeout, not a moment before."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=30.0)
    await fail(breaker)
    await trio.sleep(29.5)
    assert breaker.state is OPEN
    assert breaker.statistics().seconds_until_half_open == 0.5
    await trio.sleep(0.5)
    assert trio.current_time() == 30.0
    assert breaker.state is HALF_OPEN


async def test_probe_success_closes(autojump_clock: trio.testing.MockClock) -> None:
    """A successful probe closes the breaker with a clean streak."""
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=10.0)
    await open_breaker(breaker)
    await trio.sleep(10)
    await succeed(breaker)
    assert breaker.state is CLOSED
    await fail(breaker)
    assert breaker.state is CLOSED  # the streak restarted from zero


async def test_probe_failure_reopens_for_a_full_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A failed probe re-opens the breaker and restarts the recovery timeout."""
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=10.0)
    await open_breaker(breaker)
    await trio.sleep(12)
    await fail(breaker)
    assert breaker.state is OPEN
    with pytest.raises(CircuitBreakerOpenError) as info:
        await succeed(breaker)
    assert info.value.retry_after == 10.0
    await trio.sleep(10)
    assert breaker.state is HALF_OPEN
    assert trio.current_time() == 22.0


async def test_half_open_admits_one_probe_and_rejects_the_rest(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With half_open_max_calls=1 a second concurrent call is rejected."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0)
    await fail(breaker)
    await trio.sleep(1)
    release = trio.Event()

    async def probe() -> None:
        async with breaker:
            await release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(probe)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(CircuitBreakerOpenError) as info:
            await succeed(breaker)
        assert info.value.state is HALF_OPEN
        assert info.value.retry_after == 1.0  # the probe's deadline, recovery_timeout
        assert breaker.statistics().half_open_calls == 1
        release.set()
    assert breaker.state is CLOSED


async def test_half_open_max_calls_concurrent_probes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """half_open_max_calls probes run at once; one more is rejected."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=1.0, half_open_max_calls=3
    )
    await fail(breaker)
    await trio.sleep(1)
    release = trio.Event()
    inside = 0

    async def probe() -> None:
        nonlocal inside
        async with breaker:
            inside += 1
            await release.wait()

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(probe)
        await trio.testing.wait_all_tasks_blocked()
        assert inside == 3
        with pytest.raises(CircuitBreakerOpenError):
            await succeed(breaker)
        release.set()
    assert breaker.state is CLOSED
    assert breaker.statistics().total_rejections == 1


async def test_cancellation_never_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancelled call is neither a failure nor a success."""
    breaker = CircuitBreaker(failure_threshold=1)
    with trio.move_on_after(1) as scope:
        async with breaker:
            await trio.sleep_forever()
    assert scope.cancelled_caught
    assert breaker.state is CLOSED
    stats = breaker.statistics()
    assert (stats.total_failures, stats.total_successes) == (0, 0)


async def test_cancelled_probe_frees_its_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A cancelled probe leaves the breaker HALF_OPEN with its slot free again."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0)
    await fail(breaker)
    await trio.sleep(1)
    with trio.move_on_after(1):
        async with breaker:
            await trio.sleep_forever()
    assert breaker.state is HALF_OPEN
    assert breaker.statistics().half_open_calls == 0
    await succeed(breaker)
    assert breaker.state is CLOSED


async def test_call_admitted_while_closed_does_not_free_a_probe_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Only probes release probe slots; an older call ending in HALF_OPEN does not."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=1.0, half_open_probe_timeout=10.0
    )
    slow_done = trio.Event()
    probe_release = trio.Event()

    async def slow_call() -> None:
        with trio.move_on_after(5):  # admitted while CLOSED, cancelled at t=5
            async with breaker:
                await trio.sleep_forever()
        slow_done.set()

    async def probe() -> None:
        async with breaker:
            await probe_release.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_call)
        await trio.testing.wait_all_tasks_blocked()
        await fail(breaker)  # opens at t=0
        await trio.sleep(1)  # HALF_OPEN
        nursery.start_soon(probe)
        await slow_done.wait()
        assert trio.current_time() == 5.0
        assert breaker.statistics().half_open_calls == 1
        with pytest.raises(CircuitBreakerOpenError):
            await succeed(breaker)
        probe_release.set()
    assert breaker.state is CLOSED


async def test_expected_exception_selects_what_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Exceptions outside expected_exception propagate and count as successes."""
    breaker = CircuitBreaker(failure_threshold=2, expected_exception=ConnectionError)
    with pytest.raises(ConnectionError):
        async with breaker:
            raise ConnectionError
    for _ in range(5):
        with pytest.raises(KeyError):
            async with breaker:
                raise KeyError("not the service's fault")
    assert breaker.state is CLOSED
    assert breaker.statistics().consecutive_failures == 0


async def test_expected_exception_predicate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """expected_exception may be a predicate."""
    breaker = CircuitBreaker(
        failure_threshold=1, expected_exception=lambda exc: "5xx" in str(exc)
    )
    with pytest.raises(RuntimeError):
        async with breaker:
            raise RuntimeError("4xx")
    assert breaker.state is CLOSED
    with pytest.raises(RuntimeError):
        async with breaker:
            raise RuntimeError("5xx")
    assert breaker.state is OPEN


async def test_decorator_guards_each_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """@breaker records each call's outcome and rejects calls while OPEN."""
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=5.0)
    calls = 0

    @breaker
    async def call(ok: bool) -> str:
        """Docstring kept."""
        nonlocal calls
        calls += 1
        await trio.lowlevel.checkpoint()
        if not ok:
            raise Boom
        return "fine"

    assert call.__doc__ == "Docstring kept."
    assert await call(True) == "fine"
    for _ in range(2):
        with pytest.raises(Boom):
            await call(False)
    with pytest.raises(CircuitBreakerOpenError):
        await call(True)
    assert calls == 3
    await trio.sleep(5)
    assert await call(True) == "fine"
    assert breaker.state is CLOSED


def test_decorating_a_sync_function_is_refused() -> None:
    """The breaker decorates async functions only."""
    with pytest.raises(
        TypeError, match=r"^CircuitBreaker can only decorate async functions$"
    ):
        CircuitBreaker()(lambda: None)  # type: ignore[arg-type]


async def test_manual_recording(autojump_clock: trio.testing.MockClock) -> None:
    """record_failure / record_success drive the same state machine."""
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=4.0)
    await breaker.record_failure()
    await breaker.record_success()
    await breaker.record_failure()
    assert breaker.state is CLOSED
    await breaker.record_failure()
    assert breaker.state is OPEN
    await trio.sleep(3)
    await breaker.record_failure()  # while OPEN: ignored, timeout not extended
    await trio.sleep(1)
    assert breaker.state is HALF_OPEN
    await breaker.record_success()
    assert breaker.state is CLOSED


async def test_recording_survives_a_cancelled_scope(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """record_failure records even when called in an already cancelled scope."""
    breaker = CircuitBreaker(failure_threshold=1)
    with trio.CancelScope() as scope:
        scope.cancel()
        await breaker.record_failure()
    assert breaker.state is OPEN


async def test_wait_state_wakes_at_the_exact_times(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """wait_state wakes on time-based and event-based transitions, without polling."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=7.0)
    woke: dict[CircuitState, float] = {}

    async def watch(state: CircuitState) -> None:
        await breaker.wait_state(state)
        woke[state] = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, OPEN)
        nursery.start_soon(watch, HALF_OPEN)
        nursery.start_soon(watch, CLOSED)  # already CLOSED: returns at once
        await trio.sleep(2)
        await fail(breaker)
        await trio.sleep(20)
        nursery.start_soon(watch, CLOSED)
        await trio.sleep(1)
        await succeed(breaker)
    assert woke == {CLOSED: 23.0, OPEN: 2.0, HALF_OPEN: 9.0}


async def test_on_state_change_hook(autojump_clock: trio.testing.MockClock) -> None:
    """on_state_change is called with (old, new) on every transition, in order."""
    seen: list[tuple[CircuitState, CircuitState, float]] = []
    breaker = CircuitBreaker(
        failure_threshold=1,
        recovery_timeout=3.0,
        on_state_change=lambda old, new: seen.append((old, new, trio.current_time())),
    )
    await fail(breaker)
    await trio.sleep(3)
    await fail(breaker)
    await trio.sleep(3)
    await succeed(breaker)
    assert seen == [
        (CLOSED, OPEN, 0.0),
        (OPEN, HALF_OPEN, 3.0),
        (HALF_OPEN, OPEN, 3.0),
        (OPEN, HALF_OPEN, 6.0),
        (HALF_OPEN, CLOSED, 6.0),
    ]


async def test_statistics_snapshot(autojump_clock: trio.testing.MockClock) -> None:
    """statistics() counts successes, failures and rejections."""
    breaker = CircuitBreaker(failure_threshold=2, recovery_timeout=10.0)
    await succeed(breaker)
    await fail(breaker)
    await fail(breaker)
    with pytest.raises(CircuitBreakerOpenError):
        await succeed(breaker)
    await trio.sleep(4)
    stats = breaker.statistics()
    assert stats.state is OPEN
    assert stats.total_successes == 1
    assert stats.total_failures == 2
    assert stats.total_rejections == 1
    assert stats.seconds_until_half_open == 6.0
    with pytest.raises(AttributeError):
        stats.total_failures = 0  # type: ignore[misc]


async def test_reset_closes(autojump_clock: trio.testing.MockClock) -> None:
    """reset() forces the breaker CLOSED."""
    breaker = CircuitBreaker(failure_threshold=1)
    await fail(breaker)
    breaker.reset()
    assert breaker.state is CLOSED
    await succeed(breaker)


async def test_nested_use_in_one_task(autojump_clock: trio.testing.MockClock) -> None:
    """The same breaker may guard nested blocks in one task."""
    breaker = CircuitBreaker(failure_threshold=2)
    with pytest.raises(Boom):
        async with breaker, breaker:
            raise Boom
    assert breaker.state is OPEN


async def test_open_rejection_is_still_a_checkpoint(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Entering the breaker is a cancellation point, even when it would reject."""
    breaker = CircuitBreaker(failure_threshold=1)
    await fail(breaker)
    with trio.CancelScope() as scope:
        scope.cancel()
        await succeed(breaker)
    assert scope.cancelled_caught
    assert breaker.statistics().total_rejections == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"failure_threshold": 0}, ValueError, r"^failure_threshold must be >= 1$"),
        ({"failure_threshold": 1.5}, TypeError, r"^failure_threshold must be an int"),
        ({"recovery_timeout": -1}, ValueError, r"^recovery_timeout must be >= 0$"),
        ({"recovery_timeout": "5"}, TypeError, r"^recovery_timeout must be a number"),
        ({"half_open_max_calls": 0}, ValueError, r"^half_open_max_calls must be >= 1$"),
        (
            {"expected_exception": "ValueError"},
            TypeError,
            r"^expected_exception must be an exception type",
        ),
        ({"on_state_change": 3}, TypeError, r"^on_state_change must be callable"),
        (
            {"half_open_probe_timeout": 0},
            ValueError,
            r"^half_open_probe_timeout must be > 0$",
        ),
        (
            {"half_open_probe_timeout": -1.5},
            ValueError,
            r"^half_open_probe_timeout must be > 0$",
        ),
        (
            {"half_open_probe_timeout": math.inf},
            ValueError,
            r"^half_open_probe_timeout must be finite$",
        ),
        (
            {"half_open_probe_timeout": "5"},
            TypeError,
            r"^half_open_probe_timeout must be a number, not str$",
        ),
    ],
)
def test_invalid_arguments(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    """Misuse raises TypeError / ValueError with an exact message."""
    with pytest.raises(error, match=message):
        CircuitBreaker(**kwargs)  # type: ignore[arg-type]


# -- the public synchronous admission pair ------------------------------------------


async def test_admit_nowait_ticket_is_settled_once(autojump_clock: object) -> None:
    """A ticket records one outcome; settling it again is a RuntimeError."""
    breaker = CircuitBreaker(failure_threshold=1)
    ticket = breaker.admit_nowait()
    assert not ticket.is_probe
    ticket.settle(Boom())
    assert breaker.state is OPEN
    with pytest.raises(RuntimeError, match=r"^this CircuitBreakerTicket is already"):
        ticket.settle()


async def test_ticket_settled_from_another_task(autojump_clock: object) -> None:
    """A ticket belongs to its holder, not to a task: another task may settle it."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=5)
    breaker.admit_nowait().settle(Boom())
    await trio.sleep(5)
    probe = breaker.admit_nowait()
    assert probe.is_probe
    with pytest.raises(CircuitBreakerOpenError):
        breaker.admit_nowait()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_settle_soon, probe)
    assert breaker.state is CLOSED


async def _settle_soon(ticket: CircuitBreakerTicket) -> None:
    await trio.lowlevel.checkpoint()
    ticket.settle()


async def test_admit_nowait_counts_rejections(autojump_clock: object) -> None:
    """admit_nowait counts each rejection."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10)
    breaker.admit_nowait().settle(Boom())
    for _ in range(3):
        with pytest.raises(CircuitBreakerOpenError):
            breaker.admit_nowait()
    assert breaker.statistics().total_rejections == 3


async def test_cancelled_call_settles_as_nothing(autojump_clock: object) -> None:
    """A ticket settled with Cancelled changes no counter and frees a probe slot."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1)
    breaker.admit_nowait().settle(Boom())
    await trio.sleep(1)
    with trio.CancelScope() as scope:
        ticket = breaker.admit_nowait()
        try:
            scope.cancel()
            await trio.sleep(1)
        except BaseException as exc:
            ticket.settle(exc)
            raise
    assert breaker.state is HALF_OPEN
    breaker.admit_nowait().settle()
    assert breaker.state is CLOSED


# -- half-open probe deadlines --------------------------------------------------------


async def open_then_half_open(breaker: CircuitBreaker) -> None:
    """Open the breaker now and sleep until it is HALF_OPEN."""
    breaker.admit_nowait().settle(Boom())
    await trio.sleep(breaker.recovery_timeout)
    assert breaker.state is HALF_OPEN


async def test_hung_probe_frees_its_slot_at_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A hung probe holds its slot for recovery_timeout; then a new one is admitted."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=10.0)
    await open_then_half_open(breaker)
    hung = breaker.admit_nowait()
    assert hung.deadline == 20.0
    await trio.sleep(9.5)
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.admit_nowait()
    assert info.value.retry_after == 0.5
    await trio.sleep(0.5)
    assert trio.current_time() == 20.0
    fresh = breaker.admit_nowait()
    assert fresh.is_probe
    assert fresh.deadline == 30.0
    stats = breaker.statistics()
    assert (stats.half_open_calls, stats.expired_probes) == (1, 1)
    fresh.settle()
    assert breaker.state is CLOSED


async def test_half_open_probe_timeout_sets_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """half_open_probe_timeout replaces recovery_timeout as the probe deadline."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=10.0, half_open_probe_timeout=3.0
    )
    assert breaker.half_open_probe_timeout == 3.0
    await open_then_half_open(breaker)
    assert breaker.admit_nowait().deadline == 13.0
    await trio.sleep(2.75)
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.admit_nowait()
    assert info.value.retry_after == 0.25
    await trio.sleep(0.25)
    assert breaker.admit_nowait().deadline == 16.0


async def test_half_open_rejection_says_when_a_slot_frees(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The HALF_OPEN rejection message and retry_after give the earliest deadline."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=4.0, half_open_max_calls=2, name="db"
    )
    await open_then_half_open(breaker)
    breaker.admit_nowait()
    await trio.sleep(1.5)
    breaker.admit_nowait()
    await trio.sleep(1)
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.admit_nowait()
    assert info.value.retry_after == 1.5
    assert str(info.value) == (
        "Circuit breaker 'db' is HALF_OPEN and all probe slots are in use; "
        "next probe allowed in 1.500s"
    )
    assert breaker.statistics().retry_after == 1.5
    await trio.sleep(1.5)
    assert breaker.statistics().retry_after == 0.0
    assert breaker.statistics().half_open_calls == 1


async def test_late_settle_of_an_expired_probe_is_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A probe settled after its deadline changes no state, counter or slot."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=2.0)
    await open_then_half_open(breaker)
    first = breaker.admit_nowait()
    await trio.sleep(2)
    second = breaker.admit_nowait()  # takes the slot the first probe gave up
    await trio.sleep(2)
    live = breaker.admit_nowait()  # `second` expired in turn
    await trio.sleep(1)
    before = breaker.statistics()
    first.settle()
    second.settle(Boom())
    after = breaker.statistics()
    assert after.state is HALF_OPEN
    assert after == before
    assert (after.half_open_calls, after.expired_probes) == (1, 2)
    with pytest.raises(CircuitBreakerOpenError):
        breaker.admit_nowait()  # `live` still holds the only slot
    live.settle(Boom())
    assert breaker.state is OPEN


async def test_late_settle_cannot_free_another_probes_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After a probe expires and its slot is retaken, settling it frees nothing."""
    breaker = CircuitBreaker(
        failure_threshold=1,
        recovery_timeout=1.0,
        half_open_max_calls=2,
        half_open_probe_timeout=5.0,
    )
    await open_then_half_open(breaker)
    expired = breaker.admit_nowait()
    await trio.sleep(1)
    holder = breaker.admit_nowait()
    await trio.sleep(4)
    replacement = breaker.admit_nowait()  # `expired` is past its deadline now
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.admit_nowait()
    assert info.value.retry_after == 1.0  # `holder`'s deadline, at t=7
    expired.settle(Boom())
    assert breaker.statistics().half_open_calls == 2
    with pytest.raises(CircuitBreakerOpenError):
        breaker.admit_nowait()
    holder.settle()
    replacement.settle()
    assert breaker.state is CLOSED
    assert breaker.statistics().total_failures == 1  # only the one that opened it


async def test_expired_probe_settling_after_the_breaker_closed_is_ignored(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A late failure of an expired probe does not count against a CLOSED breaker."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0)
    await open_then_half_open(breaker)
    expired = breaker.admit_nowait()
    await trio.sleep(1)
    breaker.admit_nowait().settle()
    assert breaker.state is CLOSED
    expired.settle(Boom())
    stats = breaker.statistics()
    assert (stats.state, stats.consecutive_failures) == (CLOSED, 0)


async def test_probe_settled_at_its_deadline_is_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """At its deadline a probe's slot is free and its outcome no longer counts."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0)
    await open_then_half_open(breaker)
    probe = breaker.admit_nowait()
    await trio.sleep(1)
    probe.settle(Boom())
    stats = breaker.statistics()
    assert (stats.state, stats.half_open_calls, stats.expired_probes) == (
        HALF_OPEN,
        0,
        1,
    )
    assert stats.total_failures == 1  # only the one that opened it


async def test_probe_settled_just_before_its_deadline_counts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A probe that settles before its deadline decides the state as usual."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=1.0)
    await open_then_half_open(breaker)
    probe = breaker.admit_nowait()
    await trio.sleep(0.75)
    probe.settle(Boom())
    assert breaker.state is OPEN
    assert breaker.statistics().expired_probes == 0


async def test_async_with_probe_that_overruns_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A slow probe under async with lets a second probe in at its deadline."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=5.0)
    await open_then_half_open(breaker)
    second_admitted_at: list[float] = []

    async def slow_probe() -> None:
        async with breaker:
            await trio.sleep(8)

    async def second_probe() -> None:
        while True:
            try:
                async with breaker:
                    second_admitted_at.append(trio.current_time())
                    return
            except CircuitBreakerOpenError as exc:
                await trio.sleep(max(exc.retry_after, 0.25))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(slow_probe)
        await trio.sleep(1)
        nursery.start_soon(second_probe)
    assert second_admitted_at == [10.0]
    assert breaker.state is CLOSED
    assert trio.current_time() == 13.0


async def test_probes_have_no_deadline_when_recovery_timeout_is_zero(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """recovery_timeout=0 and no probe timeout: no deadline, retry_after is 0.0."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=0.0)
    breaker.admit_nowait().settle(Boom())
    probe = breaker.admit_nowait()
    assert probe.is_probe
    assert probe.deadline == math.inf
    await trio.sleep(1000)
    with pytest.raises(CircuitBreakerOpenError) as info:
        breaker.admit_nowait()
    assert info.value.retry_after == 0.0
    assert str(info.value) == (
        "Circuit breaker is HALF_OPEN and all probe slots are in use"
    )
    probe.settle()
    assert breaker.state is CLOSED


async def test_statistics_retry_after_in_every_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """statistics().retry_after is what a call rejected now would be told."""
    breaker = CircuitBreaker(failure_threshold=1, recovery_timeout=6.0)
    assert breaker.statistics().retry_after == 0.0
    breaker.admit_nowait().settle(Boom())
    await trio.sleep(2)
    assert breaker.statistics().retry_after == 4.0
    await trio.sleep(4)
    assert breaker.statistics().retry_after == 0.0  # HALF_OPEN, a slot free
    ticket = breaker.admit_nowait()
    await trio.sleep(1)
    assert breaker.statistics().retry_after == 5.0
    ticket.settle()
    assert breaker.statistics().retry_after == 0.0


async def test_closed_call_has_no_deadline(autojump_clock: object) -> None:
    """A call admitted while CLOSED is no probe and has no deadline."""
    ticket = CircuitBreaker().admit_nowait()
    assert not ticket.is_probe
    assert ticket.deadline == math.inf
    ticket.settle()


async def test_ignored_exception_counts_as_neither(autojump_clock: object) -> None:
    """An ignored exception changes no counter and a probe ending so decides nothing."""
    breaker = CircuitBreaker(
        failure_threshold=1, recovery_timeout=5, ignored_exception=KeyError
    )
    breaker.admit_nowait().settle(KeyError("not sent"))
    assert breaker.state is CLOSED
    stats = breaker.statistics()
    assert (stats.total_successes, stats.total_failures) == (0, 0)
    breaker.admit_nowait().settle(Boom())
    await trio.sleep(5)
    breaker.admit_nowait().settle(KeyError("not sent"))
    assert breaker.state is HALF_OPEN
    breaker.admit_nowait().settle()  # the slot was freed: a new probe decides
    assert breaker.state is CLOSED


def test_ignored_exception_is_validated() -> None:
    """ignored_exception takes the same forms as expected_exception."""
    with pytest.raises(TypeError, match=r"^ignored_exception must be an exception"):
        CircuitBreaker(ignored_exception=42)  # type: ignore[arg-type]
