"""ClientMetrics: exact counts after known traffic, read back through
prometheus-client's own text parser. Virtual time, MockTransport."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience import (
    BulkheadConfig,
    CircuitBreakerConfig,
    HedgingConfig,
    ResilientClient,
    RetryConfig,
)
from trio_resilience.client.errors import (
    CircuitOpenError,
    PoolTimeoutError,
    ServiceUnavailableError,
)
from trio_resilience.metrics import ClientMetrics
from trio_resilience.testing import MetricsSnapshot

from .test_client import Script, config


def value(metrics: ClientMetrics, name: str, **labels: str) -> float:
    return MetricsSnapshot.of(metrics.registry).value(name, **labels)


async def test_attempts_retries_and_calls_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """503, 503, 200 then a 404: exact counters and one latency per call."""
    metrics = ClientMetrics()
    script = Script(503, 503, 200)
    async with ResilientClient(
        config(), transport=script.transport, metrics=metrics
    ) as client:
        await client.get("/msg")
        script.outcomes = [404]
        with pytest.raises(Exception, match="404"):
            await client.get("/missing")
    name = "resilient_client"
    assert value(metrics, f"{name}_calls_total", method="GET", outcome="ok") == 1
    assert (
        value(metrics, f"{name}_calls_total", method="GET", outcome="NotFoundError")
        == 1
    )
    assert value(
        metrics, f"{name}_attempts_total", method="GET",
        outcome="ServiceUnavailableError",
    ) == 2  # fmt: skip
    assert value(metrics, f"{name}_attempts_total", method="GET", outcome="ok") == 1
    assert value(metrics, f"{name}_retries_total", method="GET") == 2
    assert value(metrics, f"{name}_call_duration_seconds_count", method="GET") == 2
    assert value(metrics, f"{name}_call_duration_seconds_sum", method="GET") == (
        pytest.approx(1.5)  # the two backoffs: 0.5 s and 1 s
    )


async def test_breaker_transitions_and_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    metrics = ClientMetrics()
    script = Script(503)
    breaker = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=5)
    async with ResilientClient(
        config(circuit_breaker=breaker, retry=RetryConfig(max_attempts=1)),
        transport=script.transport,
        metrics=metrics,
    ) as client:
        assert value(metrics, "resilient_client_breaker_state", origin="*") == 0
        for _ in range(2):
            with pytest.raises(ServiceUnavailableError):
                await client.get("/x")
        with pytest.raises(CircuitOpenError):
            await client.get("/x")
        assert value(metrics, "resilient_client_breaker_state", origin="*") == 2
        await trio.sleep(5)
        script.outcomes = [200]
        await client.get("/x")
    snapshot = MetricsSnapshot.of(metrics.registry)
    moves = {
        (sample.labels["from"], sample.labels["to"]): sample.value
        for sample in snapshot.matching("resilient_client_breaker_transitions_total")
    }
    assert moves == {
        ("closed", "open"): 1,
        ("open", "half_open"): 1,
        ("half_open", "closed"): 1,
    }
    assert value(metrics, "resilient_client_breaker_state", origin="*") == 0


async def test_budget_refusals_bulkhead_waits_and_hedges(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A budget of one retry refuses the second; a held slot makes a call wait
    and time out; a slow answer starts a hedge."""
    metrics = ClientMetrics()
    script = Script(503)
    retry = RetryConfig(
        max_attempts=3, min_wait_seconds=0.1, budget_ratio=0, budget_min_per_second=0.1
    )
    async with ResilientClient(
        config(retry=retry), transport=script.transport, metrics=metrics
    ) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.get("/x")
    assert value(metrics, "resilient_client_retries_total", method="GET") == 1
    assert value(metrics, "resilient_client_retries_refused_total") == 1

    slow = Script(200, delay=1.0)
    bulkhead = BulkheadConfig(max_concurrency=1, acquisition_timeout=0.5)
    async with ResilientClient(
        config(bulkhead=bulkhead, hedging=HedgingConfig(delay=0.2)),
        transport=slow.transport,
        metrics=metrics,
    ) as client:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.get, "/held")
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(PoolTimeoutError):
                await client.get("/waits", hedge=False, retry=False)
    # The call that waited and timed out, and the held call's hedge at 0.2 s,
    # which finds no slot free and is dropped.
    assert value(metrics, "resilient_client_bulkhead_waits_total") == 2
    assert value(metrics, "resilient_client_pool_timeouts_total") == 2
    assert value(metrics, "resilient_client_hedges_total", method="GET") == 1


def test_two_instances_never_clash() -> None:
    """Each has its own registry unless one is given."""
    first, second = ClientMetrics(), ClientMetrics()
    assert first.registry is not second.registry
