"""Per-call retry overrides and `retries_without_waiting`, on virtual time."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience import (
    CircuitBreakerConfig,
    ResilientClient,
    RetryConfig,
    RetryDetails,
    retry,
)
from trio_resilience.client.errors import ServiceUnavailableError
from trio_resilience.testing import retries_without_waiting

from .test_client import Script, config


async def test_retry_false_makes_one_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """retry=False: a 503 is raised at once, after one request."""
    script = Script(503, 200)
    async with ResilientClient(config(), transport=script.transport) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.get("/msg", retry=False)
        assert caught.value.attempts == 1
        assert len(script.requests) == 1
        script.outcomes = [503, 200]
        assert (await client.get("/msg")).status_code == 200  # the client's own
    assert len(script.requests) == 3  # then 503 and 200: retried by the default


async def test_a_retry_config_for_one_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """retry=RetryConfig(...): that call makes 5 attempts with its own exact
    backoff; the next call is back on the client's 3."""
    script = Script(503)
    own = RetryConfig(max_attempts=5, min_wait_seconds=0.1, jitter=False)
    patient = config(circuit_breaker=CircuitBreakerConfig(failure_threshold=100))
    async with ResilientClient(patient, transport=script.transport) as client:
        start = trio.current_time()
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.get("/msg", retry=own)
        assert caught.value.attempts == 5
        gaps = [b - a for a, b in zip(script.times, script.times[1:], strict=False)]
        assert gaps == pytest.approx([0.1, 0.2, 0.4, 0.8])
        assert trio.current_time() - start == pytest.approx(1.5)
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.get("/msg")
        assert caught.value.attempts == 3


async def test_retry_must_be_a_bool_or_a_config(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = Script(200)
    async with ResilientClient(config(), transport=script.transport) as client:
        with pytest.raises(
            TypeError, match=r"^retry must be True, False or a RetryConfig, not 3$"
        ):
            await client.get("/msg", retry=3)  # type: ignore[arg-type]
    assert script.requests == []


async def test_retries_without_waiting_keeps_the_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Inside the block: the same three attempts, no time passes, and on_retry
    still hears the delays that were skipped; after it, the waits are back."""
    seen: list[RetryDetails] = []
    script = Script(503, 503, 200)
    client = ResilientClient(config(), transport=script.transport, on_retry=seen.append)
    async with client:
        start = trio.current_time()
        with retries_without_waiting():
            assert (await client.get("/msg")).status_code == 200
        assert trio.current_time() == start
        assert len(script.requests) == 3
        assert [d.delay for d in seen] == [0.5, 1.0]
        script.outcomes = [503, 200]
        await client.get("/msg")
        assert trio.current_time() == start + 0.5


async def test_skipped_waits_ignore_a_deadline_shorter_than_the_backoff(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 0.1 s deadline would stop a 0.5 s backoff from starting; with the waits
    skipped every attempt is made. Nested blocks restore the waits only at the
    last exit."""
    script = Script(503, 503, 200)
    async with ResilientClient(config(), transport=script.transport) as client:
        with retries_without_waiting():
            with retries_without_waiting():
                pass
            with trio.fail_after(0.1):
                assert (await client.get("/msg")).status_code == 200
        assert len(script.requests) == 3
        script.outcomes = [503, 200]
        with trio.move_on_after(0.1), pytest.raises(ServiceUnavailableError):
            await client.get("/msg")


async def test_the_decorator_skips_its_waits_too(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls = 0

    @retry(on=ValueError, attempts=4)
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 4:
            raise ValueError("not yet")
        return "done"

    start = trio.current_time()
    with retries_without_waiting():
        assert await flaky() == "done"
    assert (calls, trio.current_time()) == (4, start)
