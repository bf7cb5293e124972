"""ResilientClient against the real test server (Hypercorn on 127.0.0.1, port 0)."""

from __future__ import annotations

from collections import Counter

import attrs
import httpx
import pytest
import trio
from structlog.testing import capture_logs

from trio_resilience import (
    BulkheadConfig,
    CircuitBreakerConfig,
    CircuitState,
    ClientConfig,
    ResilientClient,
    RetryConfig,
)
from trio_resilience.client.errors import (
    CircuitOpenError,
    ClientUsageError,
    PoolTimeoutError,
    ServerError,
)
from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background

FAST_RETRIES = RetryConfig(max_attempts=4, min_wait_seconds=0.05, max_wait_seconds=0.2)


async def test_recovers_from_injected_failures() -> None:
    """Two injected 500s are retried through; the server saw three attempts."""
    async with serve_in_background() as url:
        async with httpx.AsyncClient(base_url=url) as admin:
            await admin.post("/fail/count/2")
            async with ResilientClient(
                ClientConfig(base_url=url, retry=FAST_RETRIES)
            ) as client:
                response = await client.get("/msg")
            status = (await admin.get("/fail/status")).json()
    assert response.status_code == 200
    assert status["failures_injected"] == 2
    assert status["requests_seen"] == 3


async def test_every_attempt_carries_the_same_request_id() -> None:
    """The server logs one request id for all attempts of a call, and replays it."""
    # Capture until the server has stopped: it logs a request after answering it.
    with capture_logs() as logs:
        async with serve_in_background() as url:
            async with httpx.AsyncClient(base_url=url) as admin:
                await admin.post("/fail/count/2")
            cfg = ClientConfig(base_url=url, retry=FAST_RETRIES)
            async with ResilientClient(cfg) as client:
                first = await client.get("/msg")
                again = await client.get(
                    "/msg", request_id=first.request.headers["X-Request-ID"]
                )
    seen = [e for e in logs if e["event"] == "request" and e["path"] == "/msg"]
    assert [e["status"] for e in seen] == [500, 500, 200, 200]
    assert len({e["request_id"] for e in seen}) == 1
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_breaker_opens_and_closes_again() -> None:
    """Sustained failures open the circuit; after reset and recovery it closes."""
    cfg = ClientConfig(
        retry=RetryConfig(max_attempts=1),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=3, recovery_timeout=0.5),
    )
    async with serve_in_background() as url:
        async with httpx.AsyncClient(base_url=url) as admin:
            await admin.post("/fail/count/100")
            async with ResilientClient(attrs.evolve(cfg, base_url=url)) as client:
                for _ in range(3):
                    with pytest.raises(ServerError):
                        await client.get("/msg")
                with pytest.raises(CircuitOpenError, match="Circuit breaker is OPEN"):
                    await client.get("/msg")
                seen = (await admin.get("/fail/status")).json()["requests_seen"]
                assert seen == 3  # the rejected call never reached the server
                await admin.post("/fail/reset")
                await client.breaker.wait_state(CircuitState.HALF_OPEN)
                assert (await client.get("/msg")).status_code == 200
                assert client.breaker.state is CircuitState.CLOSED


async def test_bulkhead_saturation() -> None:
    """Two slots, four slow calls: two succeed, two time out waiting for a slot."""
    cfg_kwargs = {
        "bulkhead": BulkheadConfig(max_concurrency=2, acquisition_timeout=0.2),
        "retry": RetryConfig(max_attempts=1),
    }
    outcomes: list[str] = []
    async with serve_in_background() as url:
        async with ResilientClient(ClientConfig(base_url=url, **cfg_kwargs)) as client:

            async def call() -> None:
                try:
                    await client.get("/msg", params={"delay": 1000})
                    outcomes.append("ok")
                except PoolTimeoutError:
                    outcomes.append("pool-timeout")

            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(call)
    assert sorted(outcomes) == ["ok", "ok", "pool-timeout", "pool-timeout"]


async def test_load_under_a_failing_second() -> None:
    """200 concurrent calls through /fail/duration/1 all succeed, each exactly once.

    The retry budget is off: retrying every call through a total outage is what
    it exists to prevent (tests/unit/client/test_budget_client.py)."""
    cfg = ClientConfig(
        retry=RetryConfig(
            max_attempts=12,
            min_wait_seconds=0.05,
            max_wait_seconds=0.4,
            budget_ratio=None,
        ),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=100_000),
        bulkhead=BulkheadConfig(max_concurrency=50, acquisition_timeout=30),
    )
    me = trio.lowlevel.current_task()
    before = list(me.child_nurseries)
    results: list[str] = []
    with capture_logs() as logs:
        async with serve_in_background(ServerSettings(max_concurrency=100)) as url:
            async with httpx.AsyncClient(base_url=url) as admin:
                await admin.post("/fail/duration/1")
            async with ResilientClient(attrs.evolve(cfg, base_url=url)) as client:

                async def call(n: int) -> None:
                    response = await client.get("/msg", request_id=f"call-{n}")
                    results.append(response.json()["message_id"])

                async with trio.open_nursery() as nursery:
                    for n in range(200):
                        nursery.start_soon(call, n)
    assert len(results) == 200
    assert len(set(results)) == 200
    served = Counter(
        e["request_id"]
        for e in logs
        if e["event"] == "request" and e["path"] == "/msg" and e["status"] == 200
    )
    assert set(served) == {f"call-{n}" for n in range(200)}
    assert set(served.values()) == {1}
    assert me.child_nurseries == before


async def test_unsendable_requests_are_usage_errors() -> None:
    """Bad URL, scheme or header: ClientUsageError, one attempt, breaker untouched."""
    cfg = ClientConfig(
        retry=FAST_RETRIES,
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
    )
    async with serve_in_background() as url:
        async with ResilientClient(attrs.evolve(cfg, base_url=url)) as client:
            port = httpx.URL(url).port
            bad = [
                ("http://[::1", httpx.InvalidURL),
                (f"ftp://127.0.0.1:{port}/msg", httpx.UnsupportedProtocol),
            ]
            for target, cause in bad:
                with pytest.raises(ClientUsageError) as info:
                    await client.get(target, request_id="bad")
                assert isinstance(info.value.__cause__, cause)
                assert (info.value.request_id, info.value.attempts) == ("bad", 1)
            with pytest.raises(ClientUsageError) as info:
                await client.get("/msg", headers={"X-Note": "one\ntwo"})
            assert isinstance(info.value.__cause__, httpx.LocalProtocolError)
            assert client.breaker.statistics().total_failures == 0
            assert client.breaker.state is CircuitState.CLOSED
            assert (await client.get("/msg")).status_code == 200
        async with httpx.AsyncClient(base_url=url) as admin:
            seen = (await admin.get("/fail/status")).json()["requests_seen"]
    assert seen == 1  # only the good call reached /msg
