"""The breaker's rate mode and the retry budget against the test server, with a
fault rule failing 40% of /msg (seeded, so the same calls fail every run)."""

from __future__ import annotations

from trio_resilience import (
    CircuitBreakerConfig,
    CircuitState,
    ClientConfig,
    ResilientClient,
    RetryConfig,
    SlidingWindow,
)
from trio_resilience.client.errors import APIError, CircuitOpenError
from trio_resilience.testing import FaultClient


async def outcomes(client: ResilientClient, calls: int) -> list[str]:
    seen = []
    for _ in range(calls):
        try:
            await client.get("/msg")
        except CircuitOpenError:
            seen.append("rejected")
        except APIError:
            seen.append("failed")
        else:
            seen.append("ok")
    return seen


async def test_a_40_percent_failing_route_opens_the_rate_breaker_only(
    resilience_server: str, resilience_faults: FaultClient
) -> None:
    """No retries; 100 calls: the streak breaker (5 in a row) never opens, a
    window of 20 calls at a 30% threshold opens and rejects the rest."""
    await resilience_faults.add(
        method="GET", path="/msg", status=500, probability=0.4, seed=7
    )
    no_retries = RetryConfig(max_attempts=1)
    streak = ClientConfig(base_url=resilience_server, retry=no_retries)
    window = SlidingWindow(
        size=20, minimum_number_of_calls=20, failure_rate_threshold=30
    )
    rate = ClientConfig(
        base_url=resilience_server,
        retry=no_retries,
        circuit_breaker=CircuitBreakerConfig(window=window, recovery_timeout=60),
    )
    async with ResilientClient(streak) as client:
        by_streak = await outcomes(client, 100)
        assert client.breaker.state is CircuitState.CLOSED
    assert "rejected" not in by_streak
    assert 25 <= by_streak.count("failed") <= 55
    async with ResilientClient(rate) as client:
        by_rate = await outcomes(client, 100)
        assert client.breaker.state is CircuitState.OPEN
    first_rejected = by_rate.index("rejected")
    assert first_rejected >= 20
    assert set(by_rate[first_rejected:]) == {"rejected"}


async def test_the_budget_bounds_retries_of_a_failing_route(
    resilience_server: str, resilience_faults: FaultClient
) -> None:
    """/msg always 503 and a budget with a floor of 5 retries and no ratio: 20
    calls of up to 3 attempts reach the server 25 times, not 60."""
    await resilience_faults.add(method="GET", path="/msg", status=503)
    retry = RetryConfig(
        max_attempts=3,
        min_wait_seconds=0.001,
        max_wait_seconds=0.002,
        budget_ratio=0,
        budget_min_per_second=0.5,
    )
    config = ClientConfig(
        base_url=resilience_server,
        retry=retry,
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1000),
    )
    async with ResilientClient(config) as client:
        assert set(await outcomes(client, 20)) == {"failed"}
    seen = [e for e in await resilience_faults.requests() if e["path"] == "/msg"]
    assert len(seen) == 25
