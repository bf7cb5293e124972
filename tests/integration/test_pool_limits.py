"""PooledTransport's limits against real servers on 127.0.0.1: the connection cap
under load, the pool timeout, and cancellation at every await of a request.

The servers are `raw_server` (see test_pool_http), which counts the sockets it has
open at once from its own side.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import httpx
import pytest
import trio

from trio_resilience import ClientConfig, ResilientClient, RetryConfig
from trio_resilience.client import LimitsConfig, TimeoutConfig
from trio_resilience.client.errors import APITimeoutError

from .test_pool_http import (
    Conn,
    abandoned_generators_tolerated,
    assert_clean,
    ok,
    pooled_client,
    raw_server,
    response,
    wait_for,
)

# --------------------------------------------------------------------------------
# 6. The connection cap under load.


async def test_thousand_concurrent_requests_share_ten_connections() -> None:
    """1,000 concurrent requests with max_connections=10 (and 10 kept alive): all
    succeed; the server never has more than 10 sockets open; exactly 10 are ever
    opened, so the other 990 requests reuse one."""
    results: list[int] = []
    with trio.fail_after(15):
        async with (
            raw_server() as server,
            pooled_client(
                server.url,
                max_connections=10,
                max_keepalive_connections=10,
                keepalive_expiry=60,
            ) as (client, transport),
        ):

            async def call() -> None:
                response = await client.get("/ok")
                results.append(response.status_code)

            async with trio.open_nursery() as nursery:
                for _ in range(1000):
                    nursery.start_soon(call)
                await wait_for(lambda: transport.stats().waiting > 0)
                assert transport.stats().open <= 10
            assert results == [200] * 1000
            assert server.max_open <= 10
            stats = transport.stats()
            assert (stats.created, stats.reused) == (10, 990)
            assert server.accepted == 10
            assert (stats.open, stats.idle) == (10, 10)
            assert_clean(transport)


async def test_idle_connections_beyond_the_keepalive_limit_are_closed() -> None:
    """max_keepalive_connections=2: four requests in flight at once open four
    connections; once done, two stay idle and the server sees two closed."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(
                server.url, max_connections=10, max_keepalive_connections=2
            ) as (client, transport),
        ):
            async with trio.open_nursery() as nursery:
                for n in range(4):
                    nursery.start_soon(ok, client, f"/hold/{n}")
                for n in range(4):
                    await server.events[f"got:{n}"].wait()
                assert transport.stats().in_use == 4
                for n in range(4):
                    server.events[str(n)].set()
            stats = transport.stats()
            assert (stats.created, stats.open, stats.idle) == (4, 2, 2)
            await wait_for(lambda: server.closed == 2)
            assert server.open_now == 2
            assert_clean(transport)


async def test_resilient_client_limits_config_caps_connections() -> None:
    """ClientConfig(limits=LimitsConfig(max_connections=2)): 20 concurrent calls
    never have more than two sockets open at the server, and all succeed."""
    limits = LimitsConfig(max_connections=2, max_keepalive_connections=2)
    with trio.fail_after(10):
        async with raw_server() as server:
            cfg = ClientConfig(base_url=server.url, limits=limits)
            async with ResilientClient(cfg) as client:
                codes: list[int] = []

                async def call() -> None:
                    codes.append((await client.get("/ok")).status_code)

                async with trio.open_nursery() as nursery:
                    for _ in range(20):
                        nursery.start_soon(call)
                assert codes == [200] * 20
                assert server.max_open <= 2
                assert client.http_transport.stats().created == 2
                assert_clean(client.http_transport)


# --------------------------------------------------------------------------------
# 7. The pool timeout.


async def test_no_free_connection_within_the_pool_timeout_raises_pool_timeout() -> None:
    """max_connections=1 held by a blocked request: a second request with
    pool=0.2 raises httpx.PoolTimeout and stops waiting; the first then finishes
    and the pool is clean."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url, max_connections=1) as (client, transport),
        ):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ok, client, "/hold/first")
                await server.events["got:first"].wait()
                started = trio.current_time()
                with pytest.raises(httpx.PoolTimeout):
                    await client.get("/ok", timeout=httpx.Timeout(5, pool=0.2))
                assert 0.15 <= trio.current_time() - started < 2
                stats = transport.stats()
                assert (stats.waiting, stats.in_use, stats.open) == (0, 1, 1)
                server.events["first"].set()
            await ok(client)
            assert server.accepted == 1
            assert transport.stats().created == 1
            assert_clean(transport)


async def test_pool_timeout_through_resilient_client_is_api_timeout_error() -> None:
    """The same through ResilientClient (limits max_connections=1, pool 0.2 s, one
    attempt): APITimeoutError from httpx.PoolTimeout."""
    cfg = ClientConfig(
        limits=LimitsConfig(max_connections=1),
        timeout=TimeoutConfig(pool=0.2),
        retry=RetryConfig(max_attempts=1),
    )
    with trio.fail_after(10):
        async with raw_server() as server:
            async with ResilientClient(cfg) as client:
                transport = client.http_transport
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.get, f"{server.url}/hold/first")
                    await server.events["got:first"].wait()
                    with pytest.raises(APITimeoutError) as info:
                        await client.get(f"{server.url}/ok")
                    assert isinstance(info.value.__cause__, httpx.PoolTimeout)
                    assert info.value.attempts == 1
                    assert transport.stats().waiting == 0
                    server.events["first"].set()
                assert (await client.get(f"{server.url}/ok")).status_code == 200
                assert server.accepted == 1
                assert_clean(transport)


# --------------------------------------------------------------------------------
# 5. Cancellation at every await of a request.


async def cancel_when(
    client: httpx.AsyncClient,
    ready: trio.Event,
    path: str,
    **kwargs: object,
) -> None:
    """Start ``GET path`` (or POST with ``content=``), cancel it once ``ready`` is
    set; the request must end cancelled, not with a response or an error."""
    outcome: list[str] = []

    async def request(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            task_status.started(scope)
            method = "POST" if "content" in kwargs else "GET"
            await client.request(method, path, **kwargs)  # type: ignore[arg-type]
            outcome.append("answered")
        if scope.cancelled_caught:
            outcome.append("cancelled")

    async with trio.open_nursery() as nursery:
        scope = await nursery.start(request)
        await ready.wait()
        scope.cancel()
    assert outcome == ["cancelled"]


async def test_cancel_while_waiting_for_a_pool_slot() -> None:
    """max_connections=1 is busy; a second request waits, is cancelled: it stops
    waiting, takes nothing, and the held request and a later one both succeed."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url, max_connections=1) as (client, transport),
        ):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ok, client, "/hold/first")
                await server.events["got:first"].wait()
                queued = trio.Event()

                async def watch() -> None:
                    await wait_for(lambda: transport.stats().waiting == 1)
                    queued.set()

                nursery.start_soon(watch)
                await cancel_when(client, queued, "/ok")
                stats = transport.stats()
                assert (stats.waiting, stats.in_use, stats.open) == (0, 1, 1)
                server.events["first"].set()
            assert_clean(transport)
            await ok(client)
            assert server.accepted == 1
            assert len(server.requests) == 2  # the cancelled one never went out
            assert_clean(transport)


@contextmanager
def never_accepting_listener() -> Iterator[int]:
    """A port on 127.0.0.1 where a new connect hangs: listen(0), never accept,
    the one-slot accept queue filled by a connection of our own (Linux then drops
    further SYNs). Checks on exit that nothing else reached the queue."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            yield port
            listener.setblocking(False)
            queued = []
            try:
                while True:
                    queued.append(listener.accept()[0])
            except BlockingIOError:
                pass
            for sock in queued:
                sock.close()
            assert len(queued) == 1, "a connect completed: not cancelled in connect"


def syn_sent_to(port: int) -> bool:
    """Whether a socket of this machine is in SYN_SENT towards 127.0.0.1:port
    (Linux's /proc/net/tcp): a connect under way that has not completed."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    remote = f"0100007F:{port:04X}"
    return any(row[2] == remote and row[3] == "02" for row in rows)


async def test_cancel_while_connecting() -> None:
    """A connect that cannot complete (the server's accept queue is full) is
    cancelled: nothing stays open or checked out, and the same pool then serves a
    request to a working server."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            with never_accepting_listener() as port:
                connecting = trio.Event()

                async def watch() -> None:
                    await wait_for(lambda: syn_sent_to(port))
                    connecting.set()

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch)
                    await cancel_when(client, connecting, f"http://127.0.0.1:{port}/")
                stats = transport.stats()
                assert (stats.open, stats.idle, stats.in_use, stats.waiting) == (
                    0,
                    0,
                    0,
                    0,
                )
            await ok(client)
            assert_clean(transport)


async def test_connect_timeout_frees_the_slot() -> None:
    """The same hanging connect with connect=0.2: httpx.ConnectTimeout, and with
    max_connections=1 the slot is free again for the next request."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url, max_connections=1) as (client, transport),
        ):
            with never_accepting_listener() as port:
                with pytest.raises(httpx.ConnectTimeout):
                    await client.get(
                        f"http://127.0.0.1:{port}/",
                        timeout=httpx.Timeout(5, connect=0.2),
                    )
            stats = transport.stats()
            assert (stats.open, stats.in_use, stats.waiting) == (0, 0, 0)
            await ok(client)
            assert_clean(transport)


async def test_streamed_body_pieces_reach_the_server_as_produced() -> None:
    """A streamed (async iterator) body whose second piece waits until the server
    has the first: each piece must be written when produced, not held back in a
    client-side buffer (that would deadlock here)."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):

            async def interactive_body() -> AsyncIterator[bytes]:
                yield b"first piece"
                with trio.fail_after(2):
                    await server.events["got:first"].wait()
                yield b"second piece"

            async def handler(conn: Conn) -> None:
                head = await conn.read_head()
                assert head is not None
                while b"first piece" not in conn.pending:
                    if not await conn._more():
                        return
                server.events["got:first"].set()
                await conn.read_body(head)
                await conn.send(response(head.body))

            server.handler = handler
            response_ = await client.post("/", content=interactive_body())
            assert response_.content == b"first piecesecond piece"
            assert_clean(transport)


async def test_cancel_while_sending_the_body() -> None:
    """The request body is a generator that stalls after its first piece; the
    request is cancelled there: the half-sent connection is closed (the server
    sees it), and the pool serves a new request."""
    stalled = trio.Event()

    async def stalling_body() -> AsyncIterator[bytes]:
        yield b"first piece"
        stalled.set()  # the transport is inside the body's iteration now
        await trio.sleep_forever()

    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            await ok(client)  # so the cancelled request runs on a reused connection
            await cancel_when(client, stalled, "/body-hang", content=stalling_body())
            server.events["drain"].set()
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            await wait_for(lambda: server.closed == 1)
            await ok(client)
            assert transport.stats().created == 2
            assert_clean(transport)


async def test_cancel_while_sending_a_large_body() -> None:
    """A 64 MiB body the server never reads blocks in the socket send; cancelled
    there, the connection is closed and the pool stays usable."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            big = b"x" * (64 << 20)
            async with abandoned_generators_tolerated():
                await cancel_when(
                    client, server.events["body"], "/body-hang", content=big
                )
            server.events["drain"].set()
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            await wait_for(lambda: server.closed == 1)
            await ok(client)
            assert_clean(transport)


async def test_cancel_while_waiting_for_the_response_head() -> None:
    """The server has the request and never answers; the request is cancelled:
    the connection is closed, not pooled, and a next request succeeds."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            await ok(client)
            await cancel_when(client, server.events["hang"], "/hang")
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            await wait_for(lambda: server.closed == 1)
            await ok(client)
            assert transport.stats().created == 2
            assert_clean(transport)


async def test_cancel_while_reading_the_body() -> None:
    """The head and 100 of 1000 body bytes arrived, the rest never comes; the
    task reading the body is cancelled: the connection is discarded, the pool
    serves on."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            in_body = trio.Event()
            outcome: list[str] = []

            async def read(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
                with trio.CancelScope() as scope:
                    task_status.started(scope)
                    async with client.stream("GET", "/partial") as response:
                        assert response.status_code == 200
                        in_body.set()
                        await response.aread()
                        outcome.append("read")
                if scope.cancelled_caught:
                    outcome.append("cancelled")

            async with trio.open_nursery() as nursery:
                scope = await nursery.start(read)
                await in_body.wait()
                await server.events["partial"].wait()
                scope.cancel()
            assert outcome == ["cancelled"]
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            await wait_for(lambda: server.closed == 1)
            await ok(client)
            assert_clean(transport)


async def test_cancel_non_streaming_get_mid_body() -> None:
    """client.get of a body that stops after 100 of 1000 bytes is cancelled once
    the server has sent them: no slot leaks, nothing stays open."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            await cancel_when(client, server.events["partial"], "/partial")
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            await wait_for(lambda: server.closed == 1)
            await ok(client)
            assert_clean(transport)
