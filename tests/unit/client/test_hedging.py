"""Hedged requests, on virtual time: the slow first attempt is cancelled when the
hedge answers; one request id; budget, bulkhead and method rules."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing

from trio_resilience import (
    BulkheadConfig,
    ClientConfig,
    HedgingConfig,
    ResilientClient,
    RetryConfig,
)
from trio_resilience.client.errors import ServiceUnavailableError

from .test_client import config


class Upstream:
    """Answers each request after the next of ``delays`` seconds (the last one
    repeats) with ``status``; records starts, ends and cancellations."""

    def __init__(self, *delays: float, status: int = 200) -> None:
        self.delays = list(delays)
        self.status = status
        self.started: list[tuple[float, str]] = []
        self.cancelled: list[float] = []
        self.answered: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.started.append((trio.current_time(), request.headers["X-Request-ID"]))
        delay = self.delays.pop(0) if len(self.delays) > 1 else self.delays[0]
        try:
            await trio.sleep(delay)
        except trio.Cancelled:
            self.cancelled.append(trio.current_time())
            raise
        self.answered.append(trio.current_time())
        return httpx.Response(self.status, json={"after": delay})

    def client(self, **overrides: object) -> ResilientClient:
        defaults: dict[str, object] = {"hedging": HedgingConfig(delay=0.2)}
        return ResilientClient(
            config(**{**defaults, **overrides}), transport=httpx.MockTransport(self)
        )


async def test_the_hedge_answers_and_the_slow_attempt_is_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """First attempt takes 5 s; after 0.2 s a hedge starts and answers in 0.1 s:
    the call returns at 0.3 s, the first attempt is cancelled then, both carried
    one request id."""
    upstream = Upstream(5.0, 0.1)
    async with upstream.client() as client:
        response = await client.get("/slow")
    assert response.json() == {"after": 0.1}
    assert trio.current_time() == pytest.approx(0.3)
    assert [t for t, _ in upstream.started] == pytest.approx([0.0, 0.2])
    assert len({rid for _, rid in upstream.started}) == 1
    assert upstream.cancelled == pytest.approx([0.3])


async def test_a_quick_answer_starts_no_hedge(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = Upstream(0.1)
    async with upstream.client() as client:
        await client.get("/quick")
    assert len(upstream.started) == 1


async def test_up_to_max_extra_hedges_delay_apart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """max_extra=2: hedges at 0.2 s and 0.4 s; the second answers first."""
    upstream = Upstream(5.0, 5.0, 0.05)
    hedging = HedgingConfig(delay=0.2, max_extra=2)
    async with upstream.client(hedging=hedging) as client:
        assert (await client.get("/x")).json() == {"after": 0.05}
    assert [t for t, _ in upstream.started] == pytest.approx([0.0, 0.2, 0.4])
    assert upstream.cancelled == pytest.approx([0.45, 0.45])


async def test_post_is_hedged_only_when_asked(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """POST (not in methods): no hedge; hedge=True: hedged; hedge=False on a GET:
    not hedged."""
    upstream = Upstream(1.0)
    async with upstream.client() as client:
        await client.post("/items", json={})
        assert len(upstream.started) == 1
        await client.post("/items", json={}, hedge=True)
        assert len(upstream.started) == 3
        await client.get("/x", hedge=False)
        assert len(upstream.started) == 4


async def test_hedge_true_without_hedging_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = Upstream(0.1)
    async with ResilientClient(
        ClientConfig(base_url="http://service.test"),
        transport=httpx.MockTransport(upstream),
    ) as client:
        with pytest.raises(ValueError, match=r"^hedge=True needs ClientConfig"):
            await client.get("/x", hedge=True)
    assert upstream.started == []


async def test_hedges_are_paid_from_the_retry_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A budget with one retry in it: the first slow call is hedged, the second
    is not (and waits its full second)."""
    upstream = Upstream(1.0, 0.1, 1.0)
    retry = RetryConfig(budget_ratio=0, budget_min_per_second=0.1)
    async with upstream.client(retry=retry) as client:
        await client.get("/a")
        assert trio.current_time() == pytest.approx(0.3)
        await client.get("/b")
        assert trio.current_time() == pytest.approx(1.3)
        budget = client.retry_budget
        assert budget is not None
        assert (budget.statistics().retries, budget.statistics().refused) == (1, 1)
    assert len(upstream.started) == 3


async def test_a_hedge_needs_a_free_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One bulkhead slot, held by the first attempt: the hedge finds none and is
    dropped; the call still gets the first attempt's answer."""
    upstream = Upstream(1.0)
    bulkhead = BulkheadConfig(max_concurrency=1, acquisition_timeout=5)
    async with upstream.client(bulkhead=bulkhead) as client:
        assert (await client.get("/x")).json() == {"after": 1.0}
    assert len(upstream.started) == 1
    assert trio.current_time() == pytest.approx(1.0)


async def test_when_every_copy_fails_the_attempt_fails_and_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """503s after 0.5 s: the hedge starts at 0.2 s, both fail; the attempt's
    error is the first copy's, and the retry loop goes on as usual."""
    upstream = Upstream(0.5, status=503)
    retry = RetryConfig(max_attempts=2, min_wait_seconds=1, jitter=False)
    async with upstream.client(retry=retry) as client:
        with pytest.raises(ServiceUnavailableError) as caught:
            await client.get("/down")
    assert caught.value.attempts == 2
    assert [t for t, _ in upstream.started] == pytest.approx([0, 0.2, 1.7, 1.9])


async def test_cancelling_a_hedged_call_cancels_every_copy(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The caller gives up at 0.5 s with both copies in flight: both are
    cancelled, their bulkhead slots come back, and the breaker counted nothing."""
    upstream = Upstream(5.0)
    bulkhead = BulkheadConfig(max_concurrency=2, acquisition_timeout=0)
    async with upstream.client(bulkhead=bulkhead) as client:
        with trio.move_on_after(0.5) as scope:
            await client.get("/slow")
        assert scope.cancelled_caught
        assert upstream.cancelled == pytest.approx([0.5, 0.5])
        stats = client.breaker.statistics()
        assert (stats.total_successes, stats.total_failures) == (0, 0)
        upstream.delays = [0.1]
        statuses: list[int] = []

        async def get() -> None:
            statuses.append((await client.get("/a", hedge=False)).status_code)

        async with trio.open_nursery() as nursery:  # both slots free at once
            nursery.start_soon(get)
            nursery.start_soon(get)
        assert statuses == [200, 200]
