"""examples/quart_app.py: one ResilientClient in a Quart-Trio app's lifespan,
against the test server with fault rules; our errors become proxy answers."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from trio_resilience import (
    CircuitBreakerConfig,
    ClientConfig,
    RetryConfig,
    TimeoutConfig,
)
from trio_resilience.testing import FaultClient, serve_in_background

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quart_app.py"
CONFIG = ClientConfig(
    retry=RetryConfig(max_attempts=3, min_wait_seconds=0.01, max_wait_seconds=0.05),
    timeout=TimeoutConfig(read=0.3),
    circuit_breaker=CircuitBreakerConfig(failure_threshold=6, recovery_timeout=60),
)


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("quart_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` on Hypercorn (127.0.0.1, port 0) in this task's nursery; yields its
    URL. Leaving stops it gracefully, as SIGTERM would: the lifespan ends."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(serve, app, config, shutdown_trigger=stop.wait)
        )
        yield binds[0]
        stop.set()


@asynccontextmanager
async def proxy_and_upstream() -> AsyncIterator[tuple[httpx.AsyncClient, FaultClient]]:
    """The test server as the upstream, the example app in front of it; a client
    for the app and a FaultClient for the upstream."""
    example = load_example()
    async with serve_in_background() as upstream_url:
        app = example.create_app(upstream_url, CONFIG)
        async with (
            serving(app) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            yield client, FaultClient(upstream_url)


async def test_the_app_calls_through_faults_and_maps_what_remains() -> None:
    """Two 503s are retried away (one request id upstream); a 404 passes through;
    resets become 502, a hang 504; enough failures open the breaker: 503 with
    Retry-After, and the upstream sees nothing more."""
    with trio.fail_after(30):
        async with proxy_and_upstream() as (proxy, faults):
            await faults.add(method="GET", path="/msg", status=503, times=2)
            ok = await proxy.get("/proxy/msg")
            assert ok.status_code == 200, ok.text
            assert "message_id" in ok.json()["upstream"]
            msgs = [e for e in await faults.requests() if e["path"] == "/msg"]
            assert [e["status"] for e in msgs] == [503, 503, 200]
            assert len({e["request_id"] for e in msgs}) == 1

            missing = await proxy.get("/proxy/items/nope")
            assert missing.status_code == 404

            # Unbounded: the pool resends a GET reset on a reused connection once.
            reset = await faults.add(method="GET", path="/msg", reset=True)
            broken = await proxy.get("/proxy/msg")
            assert broken.status_code == 502, broken.text
            assert "request_id" in broken.json()
            await faults.remove(reset)

            await faults.add(method="GET", path="/msg", hang=True, times=3)
            slow = await proxy.get("/proxy/msg")
            assert slow.status_code == 504, slow.text

            await faults.clear_requests()
            shed = await proxy.get("/proxy/msg")  # 6 failures so far: open
            assert shed.status_code == 503
            assert int(shed.headers["Retry-After"]) >= 59
            seen = [e for e in await faults.requests() if e["path"] == "/msg"]
            assert seen == []


async def test_the_client_lives_exactly_as_long_as_the_app() -> None:
    """Opened when the app starts serving, closed (its pool too) when it stops."""
    example = load_example()
    with trio.fail_after(30):
        async with serve_in_background() as upstream_url:
            app = example.create_app(upstream_url, CONFIG)
            async with serving(app) as url:
                async with httpx.AsyncClient(base_url=url) as proxy:
                    assert (await proxy.get("/proxy/msg")).status_code == 200
                client = app.extensions[example.CLIENT]
                assert not client.is_closed
    assert client.is_closed
    assert example.CLIENT not in app.extensions
    assert client.http_transport.stats().open == 0
