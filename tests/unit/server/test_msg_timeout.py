"""GET /msg's delay against request_timeout, on virtual time, with default settings.

request_timeout counts from the request's arrival (the timeout layer sits outside
the concurrency limit), the delay from when the route runs: a delay at or beyond
request_timeout, or one that no longer fits after a wait for a slot, ends in 504
exactly when request_timeout runs out. This is what the OpenAPI document and the
README say about the delay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing
from quart.testing import QuartClient

from trio_resilience.server import ServerSettings, create_app

TIMED_OUT = (504, {"detail": "Request timed out"})


@asynccontextmanager
async def client_for(**settings: Any) -> AsyncIterator[QuartClient]:
    app = create_app(ServerSettings(log_level="ERROR", **settings))
    async with app.test_app():
        yield app.test_client()


async def get(client: QuartClient, path: str) -> tuple[int, Any]:
    response = await client.get(path)
    return response.status_code, await response.get_json()


def test_default_timeout_is_the_largest_delay() -> None:
    """With defaults, request_timeout (30 s) equals the largest delay (30000 ms)."""
    assert ServerSettings().request_timeout * 1000 == 30_000


async def test_delay_below_request_timeout_is_served(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """delay=29999 with default settings answers 200 after exactly 29.999 s."""
    async with client_for() as client:
        status, body = await get(client, "/msg?delay=29999")
    assert status == 200
    assert set(body) == {"message_id"}
    assert trio.current_time() == 29.999


async def test_delay_at_request_timeout_is_504_at_request_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """delay=30000 with default settings ends in 504 at exactly 30 s."""
    async with client_for() as client:
        assert await get(client, "/msg?delay=30000") == TIMED_OUT
    assert trio.current_time() == 30.0


async def test_delay_beyond_a_lower_request_timeout_is_504(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A delay beyond request_timeout ends in 504 when request_timeout runs out."""
    async with client_for(request_timeout=5) as client:
        assert await get(client, "/msg?delay=10000") == TIMED_OUT
    assert trio.current_time() == 5.0


async def test_wait_for_a_slot_counts_against_request_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request that waited 1 s for a slot has 29 s left: delay=29500 is a 504 at
    30 s, counted from its arrival."""
    results: dict[str, tuple[tuple[int, Any], float]] = {}
    async with client_for(max_concurrency=1) as client:

        async def call(name: str, delay_ms: int) -> None:
            results[name] = (
                await get(client, f"/msg?delay={delay_ms}"),
                trio.current_time(),
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "holder", 1000)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(call, "waiter", 29_500)
    assert results["holder"][0][0] == 200
    assert results["holder"][1] == 1.0
    assert results["waiter"] == (TIMED_OUT, 30.0)
