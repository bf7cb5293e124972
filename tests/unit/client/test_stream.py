"""ResilientClient.stream: retried up to the answer's head, never after; the slot
and the response held for the block. MockTransport on virtual time."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio
import trio.testing

from trio_resilience import BulkheadConfig, CircuitState, ResilientClient
from trio_resilience.client.errors import (
    APIConnectionError,
    NotFoundError,
    PoolTimeoutError,
)

from .test_client import Script, config


class CutBody(httpx.AsyncByteStream):
    """A body whose second piece never comes: the connection breaks."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"first"
        raise httpx.ReadError("peer closed connection mid-body")

    async def aclose(self) -> None:
        self.closed = True


async def test_failures_before_the_head_are_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """503, 503, then 200: the block gets the third answer, one request id."""
    script = Script(503, 503, 200)
    async with ResilientClient(config(), transport=script.transport) as client:
        async with client.stream("GET", "/things") as response:
            assert response.status_code == 200
            assert (await response.aread())[:1] == b"{"
    assert len(script.requests) == 3
    assert len(set(script.request_ids())) == 1


async def test_a_body_broken_in_the_block_is_ours_and_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The body breaks after its first piece: APIConnectionError leaves the
    block, after one request; the breaker counted a success."""
    body = CutBody()
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, stream=body)

    chunks: list[bytes] = []

    async def read_all(client: ResilientClient) -> None:
        async with client.stream("GET", "/things") as response:
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)

    transport = httpx.MockTransport(handler)
    async with ResilientClient(config(), transport=transport) as client:
        with pytest.raises(APIConnectionError) as caught:
            await read_all(client)
        assert isinstance(caught.value.__cause__, httpx.ReadError)
        assert caught.value.request_id == requests[0].headers["X-Request-ID"]
        assert client.breaker.state is CircuitState.CLOSED
    assert (chunks, len(requests), body.closed) == ([b"first"], 1, True)


async def test_an_error_answer_is_read_and_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 404 through stream(): NotFoundError with the body's detail, at once."""
    script = Script(404)
    async with ResilientClient(config(), transport=script.transport) as client:
        with pytest.raises(NotFoundError, match="status 404"):
            async with client.stream("GET", "/gone"):
                raise AssertionError("the block never runs")
    assert len(script.requests) == 1


async def test_the_slot_is_held_until_the_block_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One bulkhead slot: while a stream is open another call finds none; after
    the block (and after a block cancelled midway) the slot is free again."""
    script = Script(200)
    bulkhead = BulkheadConfig(max_concurrency=1, acquisition_timeout=0)
    async with ResilientClient(
        config(bulkhead=bulkhead), transport=script.transport
    ) as client:
        async with client.stream("GET", "/a"):
            with pytest.raises(PoolTimeoutError):
                await client.get("/b")
        assert (await client.get("/b")).status_code == 200
        with trio.move_on_after(1) as scope:
            async with client.stream("GET", "/c"):
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert (await client.get("/d")).status_code == 200


async def test_stream_takes_the_per_call_retry(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = Script(503, 200)
    async with ResilientClient(config(), transport=script.transport) as client:
        with pytest.raises(APIConnectionError):
            async with client.stream("GET", "/x", retry=False):
                raise AssertionError("the block never runs")
    assert len(script.requests) == 1
