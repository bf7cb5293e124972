"""ResilientClient.stream against the test server with fault rules on /stream."""

from __future__ import annotations

import json

import pytest

from trio_resilience import ClientConfig, ResilientClient, RetryConfig
from trio_resilience.client import PooledTransport
from trio_resilience.client.errors import APIConnectionError
from trio_resilience.testing import FaultClient

FAST = RetryConfig(max_attempts=3, min_wait_seconds=0.01, max_wait_seconds=0.05)


async def lines(client: ResilientClient, path: str) -> list[dict[str, object]]:
    async with client.stream("GET", path) as response:
        return [json.loads(line) async for line in response.aiter_lines() if line]


async def test_503s_before_the_stream_are_retried(
    resilience_server: str, resilience_faults: FaultClient
) -> None:
    """Two 503s on /stream/5, then its five lines, over one request id."""
    await resilience_faults.add(method="GET", path="/stream/*", status=503, times=2)
    config = ClientConfig(base_url=resilience_server, retry=FAST)
    async with ResilientClient(config) as client:
        got = await lines(client, "/stream/5")
    assert [line["id"] for line in got] == [0, 1, 2, 3, 4]
    seen = [e for e in await resilience_faults.requests() if e["path"] == "/stream/5"]
    assert [e["status"] for e in seen] == [503, 503, 200]
    assert len({e["request_id"] for e in seen}) == 1


async def test_a_body_cut_in_the_block_is_not_retried(
    resilience_server: str, resilience_faults: FaultClient
) -> None:
    """truncate=True cuts /stream/40 halfway: APIConnectionError from the block,
    and the server saw one request."""
    await resilience_faults.add(method="GET", path="/stream/*", truncate=True)
    config = ClientConfig(base_url=resilience_server, retry=FAST)
    async with ResilientClient(config) as client:
        with pytest.raises(APIConnectionError):
            await lines(client, "/stream/40")
        pool = client.http_transport
        assert isinstance(pool, PooledTransport)
        assert (pool.stats().in_use, pool.stats().idle) == (0, 0)  # discarded
    seen = [e for e in await resilience_faults.requests() if e["path"] == "/stream/40"]
    assert len(seen) == 1
