"""CircuitBreakerConfig(per_host=True): one breaker per origin, bounded in
number; one failing host never cuts off a healthy one. Virtual time."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing

from trio_resilience import (
    CircuitBreakerConfig,
    CircuitState,
    ResilientClient,
    SlidingWindow,
)
from trio_resilience.client.errors import CircuitOpenError, ServiceUnavailableError

from .test_client import config

BAD, GOOD = "http://bad.test", "http://good.test:8080"


def bad_and_good(request: httpx.Request) -> httpx.Response:
    """bad.test always answers 503; every other host 200."""
    return httpx.Response(503 if request.url.host == "bad.test" else 200)


async def test_a_failing_host_never_cuts_off_a_healthy_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Calls alternate between the two hosts: bad.test's breaker opens and
    rejects its calls; no call to good.test is ever rejected."""
    breakers = CircuitBreakerConfig(failure_threshold=3, per_host=True)
    transport = httpx.MockTransport(bad_and_good)
    rejected = good = 0
    async with ResilientClient(
        config(circuit_breaker=breakers), transport=transport
    ) as client:
        for _ in range(20):
            try:
                await client.get(f"{BAD}/x", retry=False)
            except CircuitOpenError:
                rejected += 1
            except ServiceUnavailableError:
                pass
            good += (await client.get(f"{GOOD}/x", retry=False)).status_code == 200
        assert (rejected, good) == (17, 20)
        assert set(client.breakers) == {BAD, GOOD}
        assert client.breakers[BAD].state is CircuitState.OPEN
        assert client.breakers[GOOD].state is CircuitState.CLOSED


async def test_one_shared_breaker_by_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without per_host the same traffic opens the one breaker for both hosts."""
    transport = httpx.MockTransport(bad_and_good)
    breakers = CircuitBreakerConfig(failure_threshold=3)
    async with ResilientClient(
        config(circuit_breaker=breakers), transport=transport
    ) as client:
        for _ in range(3):
            with pytest.raises(ServiceUnavailableError):
                await client.get(f"{BAD}/x", retry=False)
        with pytest.raises(CircuitOpenError):
            await client.get(f"{GOOD}/x", retry=False)
        assert dict(client.breakers) == {"*": client.breaker}


async def test_the_breakers_are_bounded_and_keep_the_open_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """max_hosts=3 and six hosts called in turn: three breakers at most; bad.test's
    open breaker is kept (the closed, least recently used ones go first)."""
    breakers = CircuitBreakerConfig(failure_threshold=1, per_host=True, max_hosts=3)
    transport = httpx.MockTransport(bad_and_good)
    async with ResilientClient(
        config(circuit_breaker=breakers), transport=transport
    ) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.get(f"{BAD}/x", retry=False)
        for n in range(5):
            await client.get(f"http://host{n}.test/x", retry=False)
            assert len(client.breakers) <= 3
        assert list(client.breakers) == [BAD, "http://host3.test", "http://host4.test"]
        with pytest.raises(CircuitOpenError):
            await client.get(f"{BAD}/x", retry=False)


async def test_a_window_config_reaches_every_host_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """CircuitBreakerConfig(window=...): bad.test at 100% failures opens after
    the window's minimum of 4 calls, in its own breaker, in rate mode."""
    window = SlidingWindow(size=10, minimum_number_of_calls=4)
    breakers = CircuitBreakerConfig(window=window, per_host=True)
    transport = httpx.MockTransport(bad_and_good)
    async with ResilientClient(
        config(circuit_breaker=breakers), transport=transport
    ) as client:
        for _ in range(4):
            with pytest.raises(ServiceUnavailableError):
                await client.get(f"{BAD}/x", retry=False)
        with pytest.raises(CircuitOpenError):
            await client.get(f"{BAD}/x", retry=False)
        assert client.breakers[BAD].window == window
        assert client.breakers[BAD].statistics().failure_rate == 100.0
