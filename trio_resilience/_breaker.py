"""Circuit breaker: stop calling a dependency that keeps failing, probe it later.

States and transitions (all times are trio time)::

    CLOSED --failure_threshold consecutive failures--> OPEN
    OPEN   --recovery_timeout elapsed-----------------> HALF_OPEN
    HALF_OPEN --a success--> CLOSED      HALF_OPEN --a failure--> OPEN

With ``window=SlidingWindow(...)`` (rate mode, resilience4j's) the CLOSED state
opens on the failure rate or slow-call rate over a window of recent calls instead of
a streak, and the half-open probes decide together (see `SlidingWindow`).

CLOSED lets every call through; a success resets the failure streak. OPEN rejects
every call at once with `CircuitBreakerOpenError`. HALF_OPEN admits at most
``half_open_max_calls`` calls at a time as probes and rejects the rest. A probe holds
its slot until it settles or until ``half_open_probe_timeout`` seconds after it was
admitted, whichever comes first, so a probe that never finishes cannot keep the
breaker from probing again.

The state is bound to the `trio.run` that uses the breaker: on its first use in
another run (pytest-trio starts one per test) it is CLOSED with clean counters, as if
new, since the times it kept were read from another run's clock.

Every state change is a synchronous step with no checkpoint inside it, so under
Trio's cooperative scheduling it is atomic: no other task can observe or interleave
a half-made transition, which is what a lock would otherwise be needed for.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import attrs
import trio
from trio_util import AsyncValue

from ._exceptions import ExceptionSpec, is_cancellation, make_matcher
from ._runbound import RunBound, current_run
from ._validation import check_async_callable, check_int, check_number
from ._window import Outcomes, SlidingWindow, WindowCounts

P = ParamSpec("P")
T = TypeVar("T")


class CircuitState(enum.Enum):
    """The three states of a `CircuitBreaker`."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreakerOpenError(Exception):
    """Raised by a `CircuitBreaker` that rejects a call without running it.

    ``retry_after`` is the number of seconds until the breaker admits a probe: the
    rest of the recovery timeout when OPEN; when HALF_OPEN with every probe slot
    taken, the time until the earliest probe's deadline frees its slot (a slot may
    free sooner, as soon as its probe settles). It is ``0.0`` only when the probes
    have no deadline (``recovery_timeout=0`` and no ``half_open_probe_timeout``).
    """

    def __init__(
        self, *, state: CircuitState, retry_after: float, name: str | None = None
    ) -> None:
        self.state = state
        self.retry_after = retry_after
        self.name = name
        label = f"Circuit breaker {name!r}" if name else "Circuit breaker"
        if state is CircuitState.OPEN:
            message = f"{label} is OPEN; next probe allowed in {retry_after:.3f}s"
        else:
            message = f"{label} is HALF_OPEN and all probe slots are in use"
            if retry_after > 0:
                message += f"; next probe allowed in {retry_after:.3f}s"
        super().__init__(message)


StateChangeHook = Callable[[CircuitState, CircuitState], object]


@attrs.frozen
class CircuitBreakerStatistics:
    """A snapshot of a `CircuitBreaker`, from `CircuitBreaker.statistics`."""

    state: CircuitState
    consecutive_failures: int
    half_open_calls: int
    """Probes holding a slot now (settled and expired ones do not)."""
    seconds_until_half_open: float
    total_successes: int
    total_failures: int
    total_rejections: int
    retry_after: float = 0.0
    """What a call rejected now would be told: seconds until a probe is admitted
    (0.0 when a call would be admitted now)."""
    expired_probes: int = 0
    """Probes whose deadline passed before they settled, counted when the breaker
    frees their slot or when they settle late."""
    window_calls: int = 0
    """Rate mode: the calls in the CLOSED state's window now."""
    failure_rate: float | None = None
    """Rate mode: the window's failure rate in percent (None below the minimum
    number of calls, or without a window)."""
    slow_call_rate: float | None = None
    """Rate mode: the window's slow-call rate in percent, likewise."""


@attrs.define(eq=False)
class CircuitBreaker(RunBound):
    """Fail fast while a dependency is down, and find out when it is back.

    Three ways to use it::

        breaker = CircuitBreaker(failure_threshold=5, recovery_timeout=30.0)

        async with breaker:              # the outcome of the block is recorded
            await call_service()

        @breaker                         # each call of the function is guarded
        async def call_service(): ...

        await breaker.record_failure()   # manual bookkeeping
        await breaker.record_success()

    Which exceptions count as failures is set by ``expected_exception`` (a type, a
    tuple of types or a predicate; default `Exception`); other exceptions count as
    successes, since the dependency did answer. ``ignored_exception`` (same forms;
    default none) names exceptions that count as neither, for calls that never
    reached the dependency (a request that could not be built, say); a probe that
    ends so frees its slot and decides nothing. Cancellation never counts. The breaker
    is not a retry policy and not a rate limiter: it only decides whether a call may
    start. ``on_state_change(old, new)`` is called on every transition.

    A half-open probe holds its slot until it settles or for at most
    ``half_open_probe_timeout`` seconds (default: ``recovery_timeout``; a positive
    number). Once its deadline has passed, the slot is free for a new probe and the
    old probe's outcome is ignored whenever it comes: the breaker gave up on it, and a
    newer probe may already be deciding the state. With ``recovery_timeout=0`` and no
    ``half_open_probe_timeout`` probes have no deadline.
    """

    failure_threshold: int = attrs.field(default=5)
    recovery_timeout: float = attrs.field(default=30.0)
    half_open_max_calls: int = attrs.field(default=1)
    expected_exception: ExceptionSpec = attrs.field(default=Exception, kw_only=True)
    name: str | None = attrs.field(default=None, kw_only=True)
    on_state_change: StateChangeHook | None = attrs.field(default=None, kw_only=True)
    half_open_probe_timeout: float | None = attrs.field(default=None, kw_only=True)
    ignored_exception: ExceptionSpec | None = attrs.field(default=None, kw_only=True)
    window: SlidingWindow | None = attrs.field(
        default=None,
        kw_only=True,
        validator=attrs.validators.optional(
            attrs.validators.instance_of(SlidingWindow)
        ),
    )

    _counts: Callable[[BaseException], bool] = attrs.field(init=False)
    _ignores: Callable[[BaseException], bool] | None = attrs.field(init=False)
    # The run the state below belongs to (see _runbound.py).
    _run: trio.lowlevel.TrioToken | None = attrs.field(init=False, default=None)
    # The state as a plain attribute for the hot path, mirrored into an AsyncValue
    # so that wait_state() can sleep until a transition instead of polling.
    _current: CircuitState = attrs.field(init=False, default=CircuitState.CLOSED)
    _observable: Any = attrs.field(init=False)  # AsyncValue[CircuitState]
    _consecutive_failures: int = attrs.field(init=False, default=0)
    _opened_at: float = attrs.field(init=False, default=-math.inf)
    # The probes holding a slot in this half-open period, with their deadlines; a
    # new dict for each period, so a probe of an earlier one frees nothing.
    _probes: dict[CircuitBreakerTicket, float] = attrs.field(init=False, factory=dict)
    # `async with breaker:` has nowhere but the task to keep its ticket between
    # __aenter__ and __aexit__; every other path holds the ticket itself.
    _entered: dict[trio.lowlevel.Task, list[CircuitBreakerTicket]] = attrs.field(
        init=False, factory=dict
    )
    _total_successes: int = attrs.field(init=False, default=0)
    _total_failures: int = attrs.field(init=False, default=0)
    _total_rejections: int = attrs.field(init=False, default=0)
    _expired_probes: int = attrs.field(init=False, default=0)
    # Rate mode (``window``): the CLOSED state's window, the half-open probes'.
    _counts_now: WindowCounts | None = attrs.field(init=False, default=None)
    _probe_outcomes: Outcomes = attrs.field(init=False, factory=Outcomes)

    def __attrs_post_init__(self) -> None:
        check_int("failure_threshold", self.failure_threshold, minimum=1)
        check_number("recovery_timeout", self.recovery_timeout, at_least=0)
        check_int("half_open_max_calls", self.half_open_max_calls, minimum=1)
        if self.half_open_probe_timeout is not None:
            check_number(
                "half_open_probe_timeout", self.half_open_probe_timeout, above=0
            )
        if self.on_state_change is not None and not callable(self.on_state_change):
            raise TypeError("on_state_change must be callable or None")
        self._counts = make_matcher(self.expected_exception, name="expected_exception")
        self._ignores = None
        if self.ignored_exception is not None:
            self._ignores = make_matcher(
                self.ignored_exception, name="ignored_exception"
            )
        self._observable = AsyncValue(CircuitState.CLOSED)
        if self.window is not None:
            self._counts_now = self.window.counts()

    def _start_run(self) -> None:
        """Forget everything of another run: CLOSED and clean, as if new."""
        self._current = CircuitState.CLOSED
        self._observable = AsyncValue(CircuitState.CLOSED)
        self._consecutive_failures = 0
        self._opened_at = -math.inf
        self._probes = {}
        self._entered = {}
        self._total_successes = 0
        self._total_failures = 0
        self._total_rejections = 0
        self._expired_probes = 0
        if self.window is not None:
            self._counts_now = self.window.counts()
        self._probe_outcomes = Outcomes()

    # -- observing ----------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        """The current state; OPEN turns HALF_OPEN once the recovery timeout is over."""
        if current_run() is not self._run:
            self._enter_run()
        self._refresh()
        return self._current

    def statistics(self) -> CircuitBreakerStatistics:
        """Counters and the current state, as a frozen snapshot."""
        state = self.state
        if self._probes:
            self._expire_probes(trio.current_time())
        failure_rate = slow_call_rate = None
        window_calls = 0
        if self.window is not None and self._counts_now is not None:
            outcomes = self._counts_now.outcomes(trio.current_time())
            window_calls = outcomes.calls
            failure_rate, slow_call_rate = outcomes.rates(
                self.window.minimum_number_of_calls
            )
        return CircuitBreakerStatistics(
            state=state,
            consecutive_failures=self._consecutive_failures,
            half_open_calls=len(self._probes),
            seconds_until_half_open=self._seconds_until_half_open(),
            total_successes=self._total_successes,
            total_failures=self._total_failures,
            total_rejections=self._total_rejections,
            retry_after=self._retry_after(),
            expired_probes=self._expired_probes,
            window_calls=window_calls,
            failure_rate=failure_rate,
            slow_call_rate=slow_call_rate,
        )

    async def wait_state(self, state: CircuitState) -> None:
        """Block until the breaker is in ``state``, without polling."""
        while True:
            current = self.state
            if current is state:
                await trio.lowlevel.checkpoint()
                return
            wake_at = math.inf
            if current is CircuitState.OPEN:
                wake_at = self._opened_at + self.recovery_timeout
            with trio.move_on_at(wake_at):
                await self._observable.wait_transition()

    # -- recording ----------------------------------------------------------------

    async def record_success(self) -> None:
        """Record a successful call made outside ``async with`` / the decorator."""
        if current_run() is not self._run:
            self._enter_run()
        self._record_success()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def record_failure(self) -> None:
        """Record a failed call made outside ``async with`` / the decorator."""
        if current_run() is not self._run:
            self._enter_run()
        self._record_failure()
        await trio.lowlevel.cancel_shielded_checkpoint()

    def reset(self) -> None:
        """Force the breaker CLOSED with a clean failure streak."""
        if current_run() is not self._run:
            self._enter_run()
        self._consecutive_failures = 0
        if self._current is not CircuitState.CLOSED:
            self._transition(CircuitState.CLOSED)

    # -- guarding calls -------------------------------------------------------------

    def admit_nowait(self) -> CircuitBreakerTicket:
        """Admit one call now, without a checkpoint, or raise `CircuitBreakerOpenError`.

        The synchronous half of a guarded call, for callers whose next step is a
        checkpoint anyway (a request on the network, say)::

            ticket = breaker.admit_nowait()
            try:
                result = await call_service()
            except BaseException as exc:
                ticket.settle(exc)
                raise
            ticket.settle()

        The returned ticket must be settled exactly once with the call's outcome; an
        unsettled half-open probe holds its slot until ``half_open_probe_timeout``,
        and a probe settled after that deadline changes nothing.
        """
        state = self.state
        if state is CircuitState.CLOSED:
            return CircuitBreakerTicket(self, None)
        if state is CircuitState.HALF_OPEN:
            probes = self._probes
            now = trio.current_time()
            if len(probes) >= self.half_open_max_calls:
                self._expire_probes(now)
            if len(probes) < self.half_open_max_calls:
                ticket = CircuitBreakerTicket(self, now + self._probe_timeout())
                probes[ticket] = ticket.deadline
                return ticket
        self._total_rejections += 1
        raise CircuitBreakerOpenError(
            state=state, retry_after=self._retry_after(), name=self.name
        )

    async def admit(self) -> CircuitBreakerTicket:
        """`admit_nowait` with a checkpoint, like any trio operation that may raise."""
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            return self.admit_nowait()
        finally:
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def __aenter__(self) -> CircuitBreaker:
        ticket = await self.admit()
        self._entered.setdefault(trio.lowlevel.current_task(), []).append(ticket)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = trio.lowlevel.current_task()
        stack = self._entered[task]
        ticket = stack.pop()
        if not stack:
            del self._entered[task]
        ticket.settle(exc)

    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        """Guard every call of the async function ``fn`` with this breaker."""
        check_async_callable("CircuitBreaker", fn)

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            ticket = await self.admit()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                ticket.settle(exc)
                raise
            ticket.settle()
            return result

        return guarded

    # -- the state machine ----------------------------------------------------------

    def _settle(self, ticket: CircuitBreakerTicket, exc: BaseException | None) -> None:
        if current_run() is not self._run:
            self._enter_run()
        if ticket._run is not self._run:
            return  # admitted in another run, whose state is gone
        deadline = ticket._deadline
        if deadline is not None:  # a probe
            if ticket._expired:
                return
            self._probes.pop(ticket, None)  # frees the slot if it still holds one
            if deadline < math.inf and deadline <= trio.current_time():
                ticket._expired = True
                self._expired_probes += 1
                return
        if exc is not None and (
            is_cancellation(exc) or (self._ignores is not None and self._ignores(exc))
        ):
            return
        slow = False
        window = self.window
        if window is not None and window.slow_call_duration is not None:
            took = trio.current_time() - ticket._admitted_at
            slow = took >= window.slow_call_duration
        if exc is not None and self._counts(exc):
            self._record_failure(slow)
        else:
            self._record_success(slow)

    # The two steps below expect the caller to have bound the breaker to this run.

    def _record_success(self, slow: bool = False) -> None:
        self._refresh()
        state = self._current
        self._total_successes += 1
        if self.window is not None:
            self._record_in_window(False, slow)
        elif state is CircuitState.CLOSED:
            self._consecutive_failures = 0
        elif state is CircuitState.HALF_OPEN:
            self._transition(CircuitState.CLOSED)

    def _record_failure(self, slow: bool = False) -> None:
        self._refresh()
        state = self._current
        self._total_failures += 1
        if self.window is not None:
            self._record_in_window(True, slow)
        elif state is CircuitState.CLOSED:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.failure_threshold:
                self._transition(CircuitState.OPEN)
        elif state is CircuitState.HALF_OPEN:
            self._transition(CircuitState.OPEN)

    def _record_in_window(self, failed: bool, slow: bool) -> None:
        """Rate mode: the outcome joins the window (CLOSED) or the probes'
        (HALF_OPEN), whose rates may open or close the breaker."""
        window = self.window
        assert window is not None
        state = self._current
        if state is CircuitState.CLOSED:
            counts = self._counts_now
            assert counts is not None
            now = trio.current_time()
            counts.record(now, failed, slow)
            if window.trips(counts.outcomes(now)):
                self._transition(CircuitState.OPEN)
        elif state is CircuitState.HALF_OPEN:
            probes = self._probe_outcomes
            probes.add(failed, slow)
            if probes.calls >= self.half_open_max_calls:
                tripped = window.trips(probes, minimum=probes.calls)
                self._transition(CircuitState.OPEN if tripped else CircuitState.CLOSED)

    def _refresh(self) -> None:
        if (
            self._current is CircuitState.OPEN
            and trio.current_time() >= self._opened_at + self.recovery_timeout
        ):
            self._transition(CircuitState.HALF_OPEN)

    def _seconds_until_half_open(self) -> float:
        if self._current is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.recovery_timeout - trio.current_time())

    def _probe_timeout(self) -> float:
        if self.half_open_probe_timeout is not None:
            return self.half_open_probe_timeout
        return self.recovery_timeout if self.recovery_timeout > 0 else math.inf

    def _expire_probes(self, now: float) -> None:
        """Free the slots of probes whose deadline has come."""
        expired = [ticket for ticket, due in self._probes.items() if due <= now]
        for ticket in expired:
            del self._probes[ticket]
            ticket._expired = True
        self._expired_probes += len(expired)

    def _retry_after(self) -> float:
        """Seconds until a call would be admitted (0.0 if it would be now, or if the
        probes holding every slot have no deadline)."""
        if self._current is CircuitState.OPEN:
            return self._seconds_until_half_open()
        if (
            self._current is CircuitState.HALF_OPEN
            and len(self._probes) >= self.half_open_max_calls
        ):
            earliest = min(self._probes.values())
            if earliest < math.inf:
                return earliest - trio.current_time()
        return 0.0

    def _transition(self, new: CircuitState) -> None:
        old = self._current
        if self._probes:
            self._probes = {}  # their later outcomes count, but free no slot
        if new is CircuitState.OPEN:
            self._opened_at = trio.current_time()
        elif new is CircuitState.CLOSED:
            self._consecutive_failures = 0
            if self.window is not None:
                self._counts_now = self.window.counts()
        else:
            self._probe_outcomes = Outcomes()
        self._current = new
        self._observable.value = new
        if self.on_state_change is not None:
            self.on_state_change(old, new)


class CircuitBreakerTicket:
    """One admitted call of a `CircuitBreaker`, from `CircuitBreaker.admit_nowait`.

    It belongs to the caller that was admitted, not to a task: settle it once with
    the call's outcome, from wherever the call ended.
    """

    __slots__ = (
        "_admitted_at",
        "_breaker",
        "_deadline",
        "_expired",
        "_run",
        "_settled",
    )

    def __init__(self, breaker: CircuitBreaker, deadline: float | None) -> None:
        self._breaker = breaker
        self._admitted_at = (
            -math.inf
            if breaker.window is None or breaker.window.slow_call_duration is None
            else trio.current_time()
        )
        self._run = breaker._run
        self._deadline = deadline  # None: not a probe
        self._expired = False
        self._settled = False

    def __repr__(self) -> str:
        probe = "" if self._deadline is None else " probe"
        done = " settled" if self._settled else ""
        return f"<CircuitBreakerTicket{probe}{done}>"

    @property
    def is_probe(self) -> bool:
        """Whether this call was admitted as a half-open probe."""
        return self._deadline is not None

    @property
    def deadline(self) -> float:
        """The trio time at which a probe's slot frees itself and its outcome stops
        counting; ``math.inf`` for a call admitted while CLOSED, or a probe with no
        deadline. A caller may bound the call with ``trio.move_on_at(deadline)``."""
        return math.inf if self._deadline is None else self._deadline

    def settle(self, exc: BaseException | None = None) -> None:
        """Record the call's outcome: None for a success, else what it raised.

        Which exceptions count as failures is the breaker's ``expected_exception``;
        cancellation and ``ignored_exception`` count as nothing. A probe settled at
        or after its `deadline` counts as nothing either (its slot is already free),
        nor does a ticket from another `trio.run`. Settling twice raises `RuntimeError`.
        """
        if self._settled:
            raise RuntimeError("this CircuitBreakerTicket is already settled")
        self._settled = True
        self._breaker._settle(self, exc)
