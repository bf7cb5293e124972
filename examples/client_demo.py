"""A tour of ResilientClient against the test server.

Start the server in one terminal (``just serve``), then run::

    python examples/client_demo.py                 # against http://127.0.0.1:8000
    python examples/client_demo.py --self-serve    # starts its own server instead

Each section sets up failures on the server through its ``/fail`` endpoints, then
shows what the client does about them. The client's own log records are printed
too (prefixed ``log``): with the default ``LoggingConfig(level="INFO")`` and the
standard library's default WARNING level, that is one WARNING per failed call.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import structlog
import trio

from trio_resilience import (
    BulkheadConfig,
    CircuitBreakerConfig,
    CircuitState,
    ClientConfig,
    ResilientClient,
    RetryConfig,
    RetryDetails,
)
from trio_resilience.client.errors import (
    CircuitOpenError,
    ClientUsageError,
    PoolTimeoutError,
    ServerError,
)
from trio_resilience.testing import serve_in_background


def say(text: str) -> None:
    print(text, flush=True)


def show_retry(details: RetryDetails) -> None:
    say(
        f"    attempt {details.attempt} failed ({type(details.exception).__name__}),"
        f" retrying in {details.delay:.2f}s"
    )


async def retries(base_url: str, admin: httpx.AsyncClient) -> None:
    say("\n1. Retries: the server fails the next 2 requests")
    await admin.post("/fail/count/2")
    config = ClientConfig(
        base_url=base_url,
        retry=RetryConfig(max_attempts=4, min_wait_seconds=0.2, max_wait_seconds=1.0),
    )
    async with ResilientClient(config, on_retry=show_retry) as client:
        response = await client.get("/msg")
    say(f"    -> {response.status_code} {response.json()}")


async def circuit_breaker(base_url: str, admin: httpx.AsyncClient) -> None:
    say("\n2. Circuit breaker: sustained failures, threshold 3, recovery after 1 s")
    await admin.post("/fail/count/1000")
    config = ClientConfig(
        base_url=base_url,
        retry=RetryConfig(max_attempts=1),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=3, recovery_timeout=1.0),
    )
    async with ResilientClient(
        config,
        on_circuit_state_change=lambda old, new: say(
            f"    circuit {old.name} -> {new.name}"
        ),
    ) as client:
        for n in range(1, 6):
            try:
                await client.get("/msg")
            except ServerError as exc:
                say(f"    call {n}: server error {exc.status_code}")
            except CircuitOpenError as exc:
                say(f"    call {n}: failed fast, no request sent: {exc}")
        await admin.post("/fail/reset")
        say("    server healthy again; waiting for the breaker to allow a probe")
        await client.breaker.wait_state(CircuitState.HALF_OPEN)
        response = await client.get("/msg")
        state = client.breaker.state.name
        say(f"    probe -> {response.status_code}; circuit is {state}")


async def bulkhead(base_url: str) -> None:
    say("\n3. Bulkhead: 3 slots, 6 slow calls (1 s each), 0.3 s to get a slot")
    config = ClientConfig(
        base_url=base_url,
        retry=RetryConfig(max_attempts=1),
        bulkhead=BulkheadConfig(max_concurrency=3, acquisition_timeout=0.3),
    )
    async with ResilientClient(config) as client:

        async def call(n: int) -> None:
            try:
                response = await client.get("/msg", params={"delay": 1000})
                say(f"    call {n}: {response.status_code}")
            except PoolTimeoutError as exc:
                say(f"    call {n}: rejected by the bulkhead: {exc}")

        async with trio.open_nursery() as nursery:
            for n in range(1, 7):
                nursery.start_soon(call, n)


async def idempotency(base_url: str, admin: httpx.AsyncClient) -> None:
    say("\n4. Idempotency: one request id, a failure in between, the same answer")
    config = ClientConfig(
        base_url=base_url, retry=RetryConfig(min_wait_seconds=0.1, max_wait_seconds=0.5)
    )
    async with ResilientClient(config, on_retry=show_retry) as client:
        one = await client.get("/msg", request_id="order-42")
        await admin.post("/fail/count/1")
        two = await client.get("/msg", request_id="order-42")
    say(f"    first:  {one.json()['message_id']}")
    say(
        f"    second: {two.json()['message_id']} "
        f"(replayed: {two.headers.get('Idempotent-Replayed', 'false')})"
    )


async def usage_errors(base_url: str) -> None:
    say("\n5. A request that cannot be sent: a typed error at once, never retried")
    async with ResilientClient(ClientConfig(base_url=base_url)) as client:
        try:
            await client.get("http://[::1")
        except ClientUsageError as exc:
            cause = type(exc.__cause__).__name__
            say(f"    {type(exc).__name__} after {exc.attempts} attempt: {exc}")
            say(f"    (raised from httpx's {cause}; the breaker did not count it)")


@asynccontextmanager
async def server(base_url: str | None) -> AsyncIterator[str]:
    if base_url is not None:
        yield base_url
        return
    async with serve_in_background() as url:
        yield url


async def main(base_url: str | None) -> None:
    async with server(base_url) as url, httpx.AsyncClient(base_url=url) as admin:
        say(f"test server at {url}")
        await admin.post("/fail/reset")
        await retries(url, admin)
        await circuit_breaker(url, admin)
        await bulkhead(url)
        await idempotency(url, admin)
        await usage_errors(url)
        await admin.post("/fail/reset")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument(
        "--self-serve", action="store_true", help="start a test server in-process"
    )
    args = parser.parse_args()
    # Keep the in-process server's request log out of the tour's output.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )
    # Show the client's records in the tour's style (the logger keeps its level).
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("    log %(levelname)s: %(message)s"))
    logging.getLogger("resilient_client").addHandler(handler)
    trio.run(main, None if args.self_serve else args.base_url)
