"""The client's retry budget during a total outage, on virtual time."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing

from trio_resilience import (
    BulkheadConfig,
    CircuitBreakerConfig,
    ResilientClient,
    RetryBudgetStatistics,
    RetryConfig,
)
from trio_resilience.client.errors import ServiceUnavailableError

from .test_client import config


def outage_config(**retry: object) -> object:
    """Three attempts 10 ms apart; a breaker and bulkhead that never interfere."""
    return config(
        retry=RetryConfig(max_attempts=3, min_wait_seconds=0.01, jitter=False, **retry),  # type: ignore[arg-type]
        circuit_breaker=CircuitBreakerConfig(failure_threshold=10**6),
        bulkhead=BulkheadConfig(max_concurrency=2000),
    )


async def calls_during_an_outage(
    client_config: object, calls: int
) -> tuple[int, list[int], RetryBudgetStatistics | None]:
    """``calls`` concurrent calls, every answer a 503: requests made, each call's
    attempts, and the client's budget then."""
    requests = 0

    def outage(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return httpx.Response(503)

    attempts: list[int] = []

    async def call(client: ResilientClient) -> None:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.get("/down")
        attempts.append(caught.value.attempts)

    transport = httpx.MockTransport(outage)
    async with ResilientClient(client_config, transport=transport) as client:  # type: ignore[arg-type]
        async with trio.open_nursery() as nursery:
            for _ in range(calls):
                nursery.start_soon(call, client)
        budget = client.retry_budget
    return requests, attempts, None if budget is None else budget.statistics()


async def test_a_total_outage_adds_a_fifth_plus_the_floor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """1,000 calls failing within the window: 1,000 first attempts, 0.2 x 1,000
    retries paid by them and 10/s x 10 s from the floor: exactly 1,300 requests,
    where 3,000 would be made without the budget."""
    requests, attempts, stats = await calls_during_an_outage(outage_config(), 1000)
    assert trio.current_time() < 10  # all inside one window
    assert requests == 1000 + 200 + 100
    assert sum(attempts) == requests
    assert stats is not None
    assert (stats.first_attempts, stats.retries) == (1000, 300)
    # Every call ended refused: 700 after their first attempt, 300 after a second.
    assert stats.refused == 1000
    assert sorted(attempts) == [1] * 700 + [2] * 300


async def test_without_the_budget_every_call_makes_every_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    requests, attempts, stats = await calls_during_an_outage(
        outage_config(budget_ratio=None), 1000
    )
    assert (requests, set(attempts), stats) == (3000, {3}, None)


async def test_a_quiet_client_gets_the_floor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Ten calls with a floor of one retry: their first attempts pay for two
    more, so three calls retry once and the retries' retries are refused."""
    client_config = outage_config(budget_min_per_second=0.1)
    requests, attempts, stats = await calls_during_an_outage(client_config, 10)
    assert (requests, sorted(attempts)) == (13, [1] * 7 + [2] * 3)
    assert stats is not None
    assert (stats.retries, stats.refused) == (3, 10)
