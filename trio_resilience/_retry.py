"""Retrying async operations on trio time: a decorator and an attempts iterator.

Both share one loop. After a failed attempt the loop decides, synchronously and before
any waiting, whether another attempt will happen:

* cancellation, ``KeyboardInterrupt`` (and groups holding them) are never retried;
* an exception that ``on`` does not match is re-raised unchanged;
* when ``attempts`` are used up, the last exception is re-raised unchanged;
* a backoff sleep that would end at or after the enclosing cancel scope's deadline
  (`trio.current_effective_deadline`) or the loop's own ``timeout`` is never started:
  the last exception is re-raised instead of sleeping into a cancellation.

Otherwise ``on_retry`` is called with a `RetryDetails` and the loop sleeps the
`Backoff` delay with `trio.sleep`, so `trio.testing.MockClock` controls it. Inside
`waits_skipped` (``trio_resilience.testing.retries_without_waiting``) every loop
makes the same attempts without sleeping between them.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterable, Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import attrs
import trio

from ._backoff import Backoff
from ._budget import RetryBudget
from ._exceptions import ExceptionSpec, is_cancellation, make_matcher
from ._validation import check_async_callable, check_int, check_number

P = ParamSpec("P")
T = TypeVar("T")

_skipping = 0
"""How many `waits_skipped` blocks are open (process-wide, as stamina's testing
mode is: a retry loop in a task started earlier, a server's, skips too)."""


@contextlib.contextmanager
def waits_skipped() -> Iterator[None]:
    """Within the block, every retry loop of the process makes all its attempts
    but sleeps none of its backoff (a bare checkpoint instead), so a deadline stops
    them only once it has passed; `RetryDetails.delay` still reports the delay that
    was skipped. Blocks nest; leaving the last restores the waits."""
    global _skipping
    _skipping += 1
    try:
        yield
    finally:
        _skipping -= 1


@attrs.frozen
class RetryDetails:
    """What ``on_retry`` hooks receive, once per retry, before the backoff sleep."""

    attempt: int
    """The number of the attempt that just failed, starting at 1."""
    exception: BaseException
    """The exception that attempt raised."""
    delay: float
    """Seconds the loop is about to sleep before the next attempt."""
    elapsed: float
    """Seconds of trio time since the first attempt started."""


RetryHook = Callable[[RetryDetails], object]
WaitHint = Callable[[BaseException], "float | None"]


def _check_timeout(value: object) -> None:
    if value is not None:
        check_number("timeout", value, above=0)


@attrs.frozen
class _RetryPolicy:
    matches: Callable[[BaseException], bool]
    attempts: int = attrs.field(
        validator=lambda _s, _a, v: check_int("attempts", v, minimum=1)
    )
    backoff: Backoff = attrs.field(validator=attrs.validators.instance_of(Backoff))
    timeout: float | None = attrs.field(validator=lambda _s, _a, v: _check_timeout(v))
    on_retry: RetryHook | None
    wait_hint: WaitHint | None = None
    budget: RetryBudget | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.instance_of(RetryBudget)),
    )

    @classmethod
    def build(
        cls,
        on: ExceptionSpec,
        attempts: int,
        backoff: Backoff,
        timeout: float | None,
        on_retry: RetryHook | None,
        wait_hint: WaitHint | None = None,
        budget: RetryBudget | None = None,
    ) -> _RetryPolicy:
        if on_retry is not None and not callable(on_retry):
            raise TypeError("on_retry must be callable or None")
        if wait_hint is not None and not callable(wait_hint):
            raise TypeError("wait_hint must be callable or None")
        return cls(
            matches=make_matcher(on, name="on"),
            attempts=attempts,
            backoff=backoff,
            timeout=timeout,
            on_retry=on_retry,
            wait_hint=wait_hint,
            budget=budget,
        )

    def delay(self, attempt: int, exc: BaseException) -> float:
        """The backoff delay, or the exception's own hint capped at the maximum."""
        if self.wait_hint is not None:
            hint = self.wait_hint(exc)
            if hint is not None:
                return min(max(0.0, hint), self.backoff.maximum)
        return self.backoff.delay(attempt)


class Attempt:
    """One try of a `retry_context` loop; wrap the attempt's code in ``with attempt:``.

    Leaving the block with a retryable exception suppresses it and lets the loop go
    on; any other exception propagates unchanged.
    """

    __slots__ = ("_loop", "_retrying", "num")

    def __init__(self, loop: _RetryLoop, num: int) -> None:
        self._loop = loop
        self._retrying = False
        self.num = num
        """The number of this attempt, starting at 1."""

    def __repr__(self) -> str:
        return f"<Attempt num={self.num}>"

    @property
    def next_wait(self) -> float | None:
        """After this attempt failed and the loop will retry, the seconds the loop
        sleeps first (code after the ``with attempt:`` block sees it); else None."""
        return self._loop._delay if self._retrying else None

    @property
    def exception(self) -> BaseException | None:
        """The exception this attempt failed with, when the loop will retry it."""
        return self._loop._exc if self._retrying else None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None:
            return False
        self._retrying = self._loop._will_retry(self, exc)
        return self._retrying


class _RetryLoop:
    """One retry loop: the async iterator behind each ``async for`` and each call."""

    __slots__ = ("_current", "_delay", "_exc", "_policy", "_start")

    def __init__(self, policy: _RetryPolicy) -> None:
        self._policy = policy
        self._current: Attempt | None = None
        self._start = 0.0
        self._delay = 0.0
        self._exc: BaseException | None = None

    def __aiter__(self) -> _RetryLoop:
        return self

    async def __anext__(self) -> Attempt:
        current = self._current
        if current is None:
            self._start = trio.current_time()
            self._current = Attempt(self, 1)
            if self._policy.budget is not None:
                self._policy.budget.deposit()
            return self._current
        if not current._retrying:
            raise StopAsyncIteration
        exc, self._exc = self._exc, None
        assert exc is not None
        if self._policy.on_retry is not None:
            self._policy.on_retry(
                RetryDetails(
                    attempt=current.num,
                    exception=exc,
                    delay=self._delay,
                    elapsed=trio.current_time() - self._start,
                )
            )
        del exc
        await trio.sleep(0 if _skipping else self._delay)
        self._current = Attempt(self, current.num + 1)
        return self._current

    def _will_retry(self, attempt: Attempt, exc: BaseException) -> bool:
        policy = self._policy
        if is_cancellation(exc) or not policy.matches(exc):
            return False
        if attempt is not self._current or attempt.num >= policy.attempts:
            return False
        delay = policy.delay(attempt.num, exc)
        wake_at = trio.current_time() + (0 if _skipping else delay)
        deadline = trio.current_effective_deadline()
        if policy.timeout is not None:
            deadline = min(deadline, self._start + policy.timeout)
        if wake_at >= deadline:
            return False
        if policy.budget is not None and not policy.budget.try_withdraw():
            return False
        self._delay = delay
        self._exc = exc
        return True


class _RetryContext:
    """What `retry_context` returns: each ``async for`` over it is a fresh loop."""

    __slots__ = ("_policy",)

    def __init__(self, policy: _RetryPolicy) -> None:
        self._policy = policy

    def __repr__(self) -> str:
        return f"<retry_context attempts={self._policy.attempts}>"

    def __aiter__(self) -> _RetryLoop:
        return _RetryLoop(self._policy)


def retry_context(
    *,
    on: ExceptionSpec,
    attempts: int = 3,
    backoff: Backoff = Backoff(),
    timeout: float | None = None,
    on_retry: RetryHook | None = None,
    wait_hint: WaitHint | None = None,
    budget: RetryBudget | None = None,
) -> AsyncIterable[Attempt]:
    """Retry an inline block::

        async for attempt in retry_context(on=httpx.TransportError, attempts=5):
            with attempt:
                response = await client.get(url)

    ``on`` is required and decides which exceptions are retried: an exception type, a
    tuple of types, or a predicate ``(exc) -> bool``. ``attempts`` counts tries,
    including the first. ``timeout`` (seconds of trio time from the first attempt)
    stops further retries once the next attempt could only start at or after it; it
    does not interrupt a running attempt (wrap the loop in `trio.fail_after` for that:
    the loop then stops retrying in time to re-raise the real error). ``on_retry`` is
    called with a `RetryDetails` before each backoff sleep. ``wait_hint(exc)`` may
    return a delay the failure itself asks for (a ``Retry-After`` header, say); it
    replaces the backoff delay, capped at ``backoff.maximum``; None keeps the backoff.
    ``budget`` (a `RetryBudget`, shared by the loops it should bound) gets a deposit
    for each loop's first attempt and must allow each retry: one it refuses ends
    the loop, re-raising the last exception at once.

    The object returned holds only the policy: every ``async for`` over it starts a
    fresh loop at attempt 1 with its own clock, so it may be kept and reused, by
    several tasks at once and in several `trio.run` calls.
    """
    return _RetryContext(
        _RetryPolicy.build(on, attempts, backoff, timeout, on_retry, wait_hint, budget)
    )


def retry(
    *,
    on: ExceptionSpec,
    attempts: int = 3,
    backoff: Backoff = Backoff(),
    timeout: float | None = None,
    on_retry: RetryHook | None = None,
    wait_hint: WaitHint | None = None,
    budget: RetryBudget | None = None,
) -> Callable[
    [Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]
]:
    """Decorate an async function so that failed calls are retried.

    Takes the same arguments as `retry_context`; when the attempts run out the last
    exception is re-raised unchanged. Each call runs its own loop, so concurrent calls
    and calls in different `trio.run` calls retry independently::

        @retry(on=ConnectionError, attempts=4, backoff=Backoff(initial=0.2))
        async def fetch() -> bytes: ...
    """
    policy = _RetryPolicy.build(
        on, attempts, backoff, timeout, on_retry, wait_hint, budget
    )

    def decorate(
        fn: Callable[P, Coroutine[Any, Any, T]],
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        check_async_callable("retry()", fn)

        @functools.wraps(fn)
        async def retrying(*args: P.args, **kwargs: P.kwargs) -> T:
            async for attempt in _RetryLoop(policy):
                with attempt:
                    return await fn(*args, **kwargs)
            raise AssertionError("unreachable: the retry loop ended without a result")

        return retrying

    return decorate
