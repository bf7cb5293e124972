"""What the examples/fault_*.py scripts share: a server, a client, the journal, checks.

Not an example itself. Each script starts its own test server (`server`), adds a
fault rule, drives a `ResilientClient` made by `client` (short backoff, no jitter,
every retry printed), reads the server's journal (`attempts`) and checks the outcome
with `check`; `run` exits 0 when every check held, 1 with the reason otherwise
(a failed check, or the error the client gave up with).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from trio_resilience import (
    ClientConfig,
    LoggingConfig,
    ResilientClient,
    RetryConfig,
    RetryDetails,
    TimeoutConfig,
)
from trio_resilience.client.errors import APIError
from trio_resilience.server import ServerSettings
from trio_resilience.testing import FaultClient, serve_in_background


class Failed(Exception):
    """The example did not show what it is meant to."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


@asynccontextmanager
async def server() -> AsyncIterator[tuple[str, FaultClient]]:
    """A test server for this script: its base URL and a `FaultClient` for it."""
    settings = ServerSettings(enable_docs=False, log_level="ERROR")
    async with serve_in_background(settings) as base_url:
        yield base_url, FaultClient(base_url)


def show_retry(details: RetryDetails) -> None:
    error = details.exception
    print(
        f"  client: attempt {details.attempt} raised {type(error).__name__}: {error};"
        f" retrying in {details.delay:.2f}s"
    )


def client(
    base_url: str,
    *,
    read: float = 5.0,
    attempts: int = 3,
    wait: float = 0.02,
    max_wait: float = 2.0,
    quiet: bool = False,
) -> ResilientClient:
    """A client making up to ``attempts`` attempts, ``wait`` s apart at first
    (doubling, no jitter), each retry printed unless ``quiet``."""
    config = ClientConfig(
        base_url=base_url,
        timeout=TimeoutConfig(read=read),
        retry=RetryConfig(
            max_attempts=attempts,
            min_wait_seconds=wait,
            max_wait_seconds=max_wait,
            jitter=False,
        ),
        logging=LoggingConfig(level="ERROR"),  # show_retry prints the retries
    )
    return ResilientClient(config, on_retry=None if quiet else show_retry)


async def attempts(
    faults: FaultClient, path: str, count: int, method: str = "GET"
) -> list[dict[str, Any]]:
    """The journal's ``method path`` entries in arrival order, once ``count`` are
    there (a request is journaled when it ends; up to 5 s), each one printed."""
    with trio.move_on_after(5):
        while True:
            entries = [
                entry
                for entry in await faults.requests()
                if (entry["method"], entry["path"]) == (method, path)
            ]
            if len(entries) >= count:
                break
            await trio.sleep(0.01)
    entries.sort(key=lambda entry: entry["at"])
    for entry in entries:
        print(
            f"  server: {method} {path} at +{entry['at'] - entries[0]['at']:.3f}s"
            f" -> {entry['status']} {entry['outcome']}"
            f" ({entry['duration_ms']:.0f} ms, fault {entry['fault']})"
        )
    return entries


def run(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main``; exit 1 with the reason if a check failed or the client gave up."""
    try:
        trio.run(main)
    except Failed as error:
        sys.exit(f"FAILED: {error}")
    except APIError as error:
        sys.exit(
            f"FAILED: the client gave up after {error.attempts} attempt(s):"
            f" {type(error).__name__}: {error}"
        )
    print("OK")
