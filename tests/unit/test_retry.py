"""retry / retry_context: attempts, exact backoff timing, deadlines and cancellation."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience import Backoff, RetryDetails, retry, retry_context

EXACT = Backoff(initial=0.5, maximum=4.0, multiplier=2.0, jitter=False)


class Flaky:
    """An async callable failing with fresh exceptions a set number of times."""

    def __init__(self, failures: int, exc_type: type[BaseException] = ValueError):
        self.failures = failures
        self.exc_type = exc_type
        self.calls: list[float] = []
        self.raised: list[BaseException] = []

    async def __call__(self, value: str = "ok") -> str:
        self.calls.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if len(self.calls) <= self.failures:
            exc = self.exc_type(f"failure {len(self.calls)}")
            self.raised.append(exc)
            raise exc
        return value


async def test_success_on_first_attempt_does_not_wait(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A call that succeeds at once returns its value without sleeping."""
    flaky = Flaky(0)
    wrapped = retry(on=ValueError, backoff=EXACT)(flaky)
    assert await wrapped("v") == "v"
    assert flaky.calls == [0.0]
    assert trio.current_time() == 0.0


async def test_retries_until_success_with_exact_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Failed attempts are retried after exactly the backoff delays."""
    flaky = Flaky(3)
    wrapped = retry(on=ValueError, attempts=4, backoff=EXACT)(flaky)
    assert await wrapped() == "ok"
    assert flaky.calls == [0.0, 0.5, 1.5, 3.5]


async def test_last_exception_is_reraised_unchanged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When attempts run out, the last attempt's exception object is raised."""
    flaky = Flaky(10)
    wrapped = retry(on=ValueError, attempts=3, backoff=EXACT)(flaky)
    with pytest.raises(ValueError, match=r"^failure 3$") as info:
        await wrapped()
    assert info.value is flaky.raised[-1]
    assert flaky.calls == [0.0, 0.5, 1.5]
    assert trio.current_time() == 1.5  # no sleep after the last attempt


async def test_non_matching_exception_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An exception that `on` does not match propagates after one attempt."""
    flaky = Flaky(5, exc_type=KeyError)
    wrapped = retry(on=ValueError, attempts=5, backoff=EXACT)(flaky)
    with pytest.raises(KeyError):
        await wrapped()
    assert len(flaky.calls) == 1


async def test_on_accepts_a_tuple(autojump_clock: trio.testing.MockClock) -> None:
    """`on` may be a tuple of exception types."""
    flaky = Flaky(2, exc_type=KeyError)
    wrapped = retry(on=(ValueError, KeyError), attempts=3, backoff=EXACT)(flaky)
    assert await wrapped() == "ok"
    assert len(flaky.calls) == 3


async def test_on_accepts_a_predicate(autojump_clock: trio.testing.MockClock) -> None:
    """`on` may be a predicate receiving the exception."""
    seen: list[BaseException] = []

    def only_first(exc: BaseException) -> bool:
        seen.append(exc)
        return str(exc) == "failure 1"

    flaky = Flaky(5)
    wrapped = retry(on=only_first, attempts=5, backoff=EXACT)(flaky)
    with pytest.raises(ValueError, match=r"^failure 2$"):
        await wrapped()
    assert seen == flaky.raised
    assert len(flaky.calls) == 2


async def test_attempts_one_means_no_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """attempts=1 runs the function once."""
    flaky = Flaky(1)
    with pytest.raises(ValueError, match=r"^failure 1$"):
        await retry(on=ValueError, attempts=1)(flaky)()
    assert len(flaky.calls) == 1


async def test_on_retry_hook_receives_details(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """on_retry gets attempt, exception, delay and elapsed time before each sleep."""
    details: list[RetryDetails] = []
    flaky = Flaky(2)
    wrapped = retry(on=ValueError, attempts=3, backoff=EXACT, on_retry=details.append)
    assert await wrapped(flaky)() == "ok"
    assert details == [
        RetryDetails(attempt=1, exception=flaky.raised[0], delay=0.5, elapsed=0.0),
        RetryDetails(attempt=2, exception=flaky.raised[1], delay=1.0, elapsed=0.5),
    ]


async def test_never_sleeps_past_the_enclosing_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A backoff sleep outlasting the cancel scope is skipped; the error is raised."""
    flaky = Flaky(10)
    wrapped = retry(on=ValueError, attempts=10, backoff=EXACT)(flaky)
    with (
        trio.move_on_after(2.0) as scope,
        pytest.raises(ValueError, match=r"^failure 3$") as info,
    ):
        await wrapped()
    # attempts at 0.0 and 0.5; the next would start at 1.5 and the one after at 3.5,
    # past the deadline of 2.0: the error of attempt 3 is raised at t=1.5
    assert flaky.calls == [0.0, 0.5, 1.5]
    assert info.value is flaky.raised[-1]
    assert trio.current_time() == 1.5
    assert not scope.cancelled_caught


async def test_sleep_ending_exactly_at_the_deadline_is_not_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A backoff sleep ending exactly at the deadline would only meet cancellation."""
    flaky = Flaky(10)
    wrapped = retry(on=ValueError, attempts=10, backoff=EXACT)(flaky)
    with trio.move_on_after(0.5), pytest.raises(ValueError, match=r"^failure 1$"):
        await wrapped()
    assert flaky.calls == [0.0]


async def test_timeout_bounds_the_retrying(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """No attempt starts at or after `timeout` seconds from the first one."""
    flaky = Flaky(10)
    wrapped = retry(on=ValueError, attempts=10, backoff=EXACT, timeout=3.5)(flaky)
    with pytest.raises(ValueError, match=r"^failure 3$"):
        await wrapped()
    assert flaky.calls == [0.0, 0.5, 1.5]


async def test_cancellation_is_never_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """trio.Cancelled propagates even when `on` matches every exception."""
    calls = 0

    @retry(on=BaseException, attempts=5, backoff=EXACT)
    async def slow() -> None:
        nonlocal calls
        calls += 1
        await trio.sleep(10)

    with trio.move_on_after(1.0) as scope:
        await slow()
    assert scope.cancelled_caught
    assert calls == 1
    assert trio.current_time() == 1.0


async def test_cancellation_during_backoff_sleep_propagates(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling a caller that is sleeping between attempts stops the loop at once."""
    flaky = Flaky(10)
    wrapped = retry(on=ValueError, attempts=10, backoff=EXACT)(flaky)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(wrapped)
        await trio.sleep(0.25)
        nursery.cancel_scope.cancel()
    assert flaky.calls == [0.0]
    assert trio.current_time() == 0.25


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
async def test_exit_requests_are_never_retried(
    autojump_clock: trio.testing.MockClock, exc_type: type[BaseException]
) -> None:
    """KeyboardInterrupt and SystemExit propagate even with on=BaseException."""
    flaky = Flaky(3, exc_type=exc_type)
    with pytest.raises(exc_type):
        await retry(on=BaseException, attempts=5, backoff=EXACT)(flaky)()
    assert len(flaky.calls) == 1


async def test_cancelled_nursery_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A nursery cancelled from outside is not retried, even with on=BaseException."""
    calls = 0

    @retry(on=BaseException, attempts=5, backoff=EXACT)
    async def fan_out() -> None:
        nonlocal calls
        calls += 1
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            nursery.start_soon(trio.sleep_forever)

    with trio.move_on_after(1.0) as scope:
        await fan_out()
    assert scope.cancelled_caught
    assert calls == 1


async def test_exception_group_holding_an_exit_request_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A group containing KeyboardInterrupt is never retried, even if `on` matches."""
    calls = 0

    @retry(on=lambda exc: True, attempts=5, backoff=EXACT)
    async def fan_out() -> None:
        nonlocal calls
        calls += 1
        await trio.lowlevel.checkpoint()
        raise BaseExceptionGroup("mixed", [ValueError("a"), KeyboardInterrupt()])

    with pytest.raises(BaseExceptionGroup, match=r"^mixed"):
        await fan_out()
    assert calls == 1


async def test_exception_group_is_retried_when_matched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A plain exception group is retried when `on` matches it."""
    flaky = Flaky(0)
    calls = 0

    @retry(on=ExceptionGroup, attempts=3, backoff=EXACT)
    async def fan_out() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ExceptionGroup("several", [ValueError("a"), KeyError("b")])
        return await flaky()

    assert await fan_out() == "ok"
    assert calls == 3
    assert trio.current_time() == 1.5


async def test_retry_context_retries_inline_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """retry_context yields numbered attempts until the block succeeds."""
    flaky = Flaky(2)
    numbers = []
    async for attempt in retry_context(on=ValueError, attempts=5, backoff=EXACT):
        with attempt:
            numbers.append(attempt.num)
            result = await flaky()
    assert result == "ok"
    assert numbers == [1, 2, 3]
    assert flaky.calls == [0.0, 0.5, 1.5]


async def test_retry_context_reraises_the_last_exception(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """retry_context re-raises the last exception when attempts run out."""
    flaky = Flaky(10)

    async def call() -> None:
        async for attempt in retry_context(on=ValueError, attempts=2, backoff=EXACT):
            with attempt:
                await flaky()

    with pytest.raises(ValueError, match=r"^failure 2$") as info:
        await call()
    assert info.value is flaky.raised[-1]


async def test_retry_context_stops_after_success_with_break_free_body(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A successful attempt ends the loop; code after the with block still runs once."""
    after = 0
    async for attempt in retry_context(on=ValueError, backoff=EXACT):
        with attempt:
            await trio.lowlevel.checkpoint()
        after += 1
    assert after == 1


async def test_decorator_preserves_metadata_and_arguments(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The wrapper keeps the function's name and docstring and passes arguments."""

    @retry(on=ValueError)
    async def add(a: int, *, b: int) -> int:
        """Add two numbers."""
        await trio.lowlevel.checkpoint()
        return a + b

    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert await add(1, b=2) == 3


def test_on_is_required() -> None:
    """There is no silent retry-everything default."""
    with pytest.raises(TypeError):
        retry()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        retry_context()  # type: ignore[call-arg]


@pytest.mark.parametrize("on", [None, 3, "ValueError", (), (ValueError, 3), int])
def test_invalid_on(on: object) -> None:
    """`on` must be an exception type, a tuple of them, or a predicate."""
    message = (
        r"^on must be an exception type, a non-empty tuple of exception types, "
        r"or a predicate$"
    )
    with pytest.raises(TypeError, match=message):
        retry(on=on)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=message):
        retry_context(on=on)  # type: ignore[arg-type]


def test_invalid_arguments() -> None:
    """attempts, timeout, backoff and on_retry are checked with exact messages."""
    with pytest.raises(ValueError, match=r"^attempts must be >= 1$"):
        retry(on=ValueError, attempts=0)
    with pytest.raises(TypeError, match=r"^attempts must be an int, not float$"):
        retry(on=ValueError, attempts=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^timeout must be > 0$"):
        retry(on=ValueError, timeout=0)
    with pytest.raises(TypeError, match=r"^on_retry must be callable or None$"):
        retry(on=ValueError, on_retry=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"backoff"):
        retry(on=ValueError, backoff=0.5)  # type: ignore[arg-type]


def test_decorating_a_sync_function_is_refused() -> None:
    """retry() decorates async functions only."""
    with pytest.raises(
        TypeError, match=r"^retry\(\) can only decorate async functions$"
    ):
        retry(on=ValueError)(lambda: None)  # type: ignore[arg-type]


class Throttled(Exception):
    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"retry after {retry_after}")
        self.retry_after = retry_after


async def test_wait_hint_replaces_backoff_and_is_capped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A hinted delay (e.g. Retry-After) wins over backoff, capped at its maximum."""
    hints = [3.0, None, 100.0]
    calls: list[float] = []

    @retry(
        on=Throttled,
        attempts=4,
        backoff=EXACT,
        wait_hint=lambda exc: getattr(exc, "retry_after", None),
    )
    async def throttled() -> str:
        calls.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        if hints:
            raise Throttled(hints.pop(0))
        return "ok"

    assert await throttled() == "ok"
    # 3.0 from the hint; 1.0 from backoff (attempt 2); 100 capped at maximum 4.0
    assert calls == [0.0, 3.0, 4.0, 8.0]


def test_wait_hint_must_be_callable() -> None:
    """wait_hint is checked."""
    with pytest.raises(TypeError, match=r"^wait_hint must be callable or None$"):
        retry(on=ValueError, wait_hint=1.0)  # type: ignore[arg-type]


# -- reuse: every loop is fresh ------------------------------------------------------


async def test_retry_context_iterated_again_runs_a_fresh_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A second async for over one retry_context starts again at attempt 1."""
    attempts = retry_context(on=ValueError, attempts=3, backoff=EXACT)
    seen: list[tuple[int, float]] = []
    for _ in range(2):
        flaky = Flaky(1)
        async for attempt in attempts:
            with attempt:
                seen.append((attempt.num, trio.current_time()))
                await flaky()
    assert seen == [(1, 0.0), (2, 0.5), (1, 0.5), (2, 1.0)]


async def test_retry_context_iterated_again_still_raises(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reused retry_context re-raises when its block keeps failing, never skips it."""
    attempts = retry_context(on=ValueError, attempts=2, backoff=EXACT)

    async def loop() -> None:
        flaky = Flaky(10)
        async for attempt in attempts:
            with attempt:
                await flaky()

    for _ in range(2):
        with pytest.raises(ValueError, match=r"^failure 2$"):
            await loop()
    assert trio.current_time() == 1.0


async def test_retry_context_makes_a_new_iterator_per_loop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """retry_context returns an iterable, whose __aiter__ gives a new loop each time."""
    attempts = retry_context(on=ValueError)
    first, second = aiter(attempts), aiter(attempts)
    assert first is not second
    assert not hasattr(attempts, "__anext__")
    assert (await anext(first)).num == 1
    assert (await anext(second)).num == 1


async def test_one_retry_context_shared_by_two_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two tasks looping over one retry_context at once retry independently."""
    attempts = retry_context(on=ValueError, attempts=4, backoff=EXACT)
    seen: dict[str, list[tuple[int, float]]] = {"a": [], "b": []}

    async def worker(name: str, failures: int, start: float) -> None:
        await trio.sleep(start)
        flaky = Flaky(failures)
        async for attempt in attempts:
            with attempt:
                seen[name].append((attempt.num, trio.current_time()))
                await flaky()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker, "a", 3, 0.0)
        nursery.start_soon(worker, "b", 1, 0.25)
    assert seen == {
        "a": [(1, 0.0), (2, 0.5), (3, 1.5), (4, 3.5)],
        "b": [(1, 0.25), (2, 0.75)],
    }


async def test_one_decorated_function_called_by_two_tasks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Concurrent calls of one decorated function each run their own loop."""

    @retry(on=ValueError, attempts=3, backoff=EXACT)
    async def call(flaky: Flaky) -> str:
        return await flaky()

    slow, quick = Flaky(2), Flaky(2, exc_type=KeyError)
    results: dict[str, object] = {}

    async def run(name: str, flaky: Flaky, start: float) -> None:
        await trio.sleep(start)
        try:
            results[name] = await call(flaky)
        except KeyError as exc:
            results[name] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "slow", slow, 0.0)
        nursery.start_soon(run, "quick", quick, 0.25)
    assert results["slow"] == "ok"
    assert results["quick"] is quick.raised[0]  # KeyError is not retried
    assert slow.calls == [0.0, 0.5, 1.5]
    assert quick.calls == [0.25]
