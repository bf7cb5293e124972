"""PooledTransport against real servers on 127.0.0.1: what it does with each way a
server answers, closes or breaks a keep-alive connection.

Most tests use `raw_server`, a hand-written HTTP/1.1 server on `trio.serve_tcp`
whose bytes, closes and resets are exact and which counts the sockets it accepted
and saw closed; a few run the project's Hypercorn server. After each test the pool
must be clean: nothing checked out, nobody waiting, every open connection idle.
"""

from __future__ import annotations

import gc
import socket
import struct
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing, asynccontextmanager
from functools import partial

import attrs
import httpx
import pytest
import trio
import trio.testing

from trio_resilience import ClientConfig, ResilientClient
from trio_resilience.client import LimitsConfig, PooledTransport
from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background

# --------------------------------------------------------------------------------
# A raw HTTP/1.1 server with exact control of its bytes.


def pattern(size: int) -> bytes:
    """``size`` deterministic bytes (so a misplaced chunk shows)."""
    block = bytes(range(256))
    return (block * (size // 256 + 1))[:size]


def response(
    body: bytes = b"ok",
    *,
    status: int = 200,
    close: bool = False,
    chunk_size: int | None = None,
) -> bytes:
    """A whole response: Content-Length, or chunked in ``chunk_size`` pieces."""
    head = [f"HTTP/1.1 {status} OK", "Content-Type: application/octet-stream"]
    if close:
        head.append("Connection: close")
    if chunk_size is None:
        head.append(f"Content-Length: {len(body)}")
        payload = body
    else:
        head.append("Transfer-Encoding: chunked")
        pieces = [body[i : i + chunk_size] for i in range(0, len(body), chunk_size)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    return ("\r\n".join(head) + "\r\n\r\n").encode() + payload


@attrs.define(eq=False)
class Head:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@attrs.define(eq=False)
class Conn:
    """One accepted connection, seen from the server."""

    stream: trio.SocketStream
    number: int
    """1 for the first connection the server accepted, 2 for the next, ..."""
    server: RawServer
    pending: bytes = b""

    async def _more(self) -> bool:
        try:
            chunk = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            chunk = b""
        self.pending += chunk
        return bool(chunk)

    async def read_head(self) -> Head | None:
        """The next request's head; None at EOF."""
        while b"\r\n\r\n" not in self.pending:
            if not await self._more():
                return None
        raw, _, self.pending = self.pending.partition(b"\r\n\r\n")
        request_line, *lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        head = Head(method, target, headers)
        self.server.requests.append(head)
        return head

    async def _exactly(self, size: int) -> bytes:
        while len(self.pending) < size:
            if not await self._more():
                raise trio.BrokenResourceError("EOF inside a request body")
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    async def _line(self) -> bytes:
        while b"\r\n" not in self.pending:
            if not await self._more():
                raise trio.BrokenResourceError("EOF inside a chunked body")
        line, _, self.pending = self.pending.partition(b"\r\n")
        return line

    async def read_body(self, head: Head) -> bytes:
        """The request body (Content-Length or chunked), stored on ``head``."""
        if "content-length" in head.headers:
            head.body = await self._exactly(int(head.headers["content-length"]))
        elif "chunked" in head.headers.get("transfer-encoding", ""):
            parts = []
            while size := int((await self._line()).split(b";")[0], 16):
                parts.append(await self._exactly(size))
                await self._exactly(2)
            while await self._line():  # trailers, up to the empty line
                pass
            head.body = b"".join(parts)
        return head.body

    async def request(self) -> Head | None:
        """The next whole request; None at EOF."""
        head = await self.read_head()
        if head is not None:
            await self.read_body(head)
        return head

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def wait_eof(self) -> None:
        """Discard whatever comes until the client closes the connection."""
        while await self._more():
            self.pending = b""

    def reset(self) -> None:
        """Make the close a TCP RST (SO_LINGER 0); the handler returns after."""
        self.stream.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )


Handler = Callable[[Conn], Awaitable[None]]


@attrs.define(eq=False)
class RawServer:
    """Counts sockets: accepted, open now, the most ever open at once, closed."""

    handler: Handler
    port: int = 0
    accepted: int = 0
    open_now: int = 0
    max_open: int = 0
    closed: int = 0
    requests: list[Head] = attrs.Factory(list)
    events: defaultdict[str, trio.Event] = attrs.Factory(
        lambda: defaultdict(trio.Event)
    )
    """Named events: the handler sets some, the test sets others."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        self.open_now += 1
        self.max_open = max(self.max_open, self.open_now)
        try:
            await self.handler(Conn(stream, self.accepted, self))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away while we were sending
        finally:
            await stream.aclose()
            self.open_now -= 1
            self.closed += 1


@asynccontextmanager
async def raw_server(handler: Handler | None = None) -> AsyncIterator[RawServer]:
    """A `RawServer` on 127.0.0.1, port 0, in this task's nursery."""
    server = RawServer(handler or serve_routes)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, server._serve, 0, host="127.0.0.1")
        )
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()


async def serve_routes(conn: Conn) -> None:
    """Keep-alive; the path picks the answer:

    * ``/ok`` (and anything unknown): ``ok``;
    * ``/cl/N``, ``/chunked/N``: N bytes of `pattern`, Content-Length or chunked;
    * ``/echo``: the request body;
    * ``/close``: answers with Connection: close, then closes;
    * ``/hold/NAME``: sets ``got:NAME``, answers once the test sets ``NAME``;
    * ``/hang``: sets ``hang`` and never answers;
    * ``/body-hang``: sets ``body`` at the first body byte, then reads nothing
      more until the test sets ``drain``;
    * ``/partial``: sends the head and 100 of 1000 body bytes, sets ``partial``,
      sends nothing more;
    * ``/reset``: the same, then a reset; ``/reset-later`` resets once the test
      sets ``reset``.

    Those that never answer wait for the client's EOF, so the server counts the
    close.
    """
    server = conn.server
    while (head := await conn.read_head()) is not None:
        path = head.path
        if path == "/body-hang":
            while not conn.pending:
                if not await conn._more():
                    return
            server.events["body"].set()
            await server.events["drain"].wait()
            await conn.wait_eof()
            return
        await conn.read_body(head)
        if path.startswith("/cl/"):
            await conn.send(response(pattern(int(path[4:]))))
        elif path.startswith("/chunked/"):
            await conn.send(response(pattern(int(path[9:])), chunk_size=16384))
        elif path == "/close":
            await conn.send(response(close=True))
            return
        elif path.startswith("/hold/"):
            name = path[6:]
            server.events[f"got:{name}"].set()
            await server.events[name].wait()
            await conn.send(response())
        elif path == "/echo":
            await conn.send(response(head.body))
        elif path == "/hang":
            server.events["hang"].set()
            await conn.wait_eof()
            return
        elif path in ("/partial", "/reset", "/reset-later"):
            head_only = response(pattern(1000))[: -1000 + 100]
            await conn.send(head_only)
            server.events["partial"].set()
            if path == "/partial":
                await conn.wait_eof()
                return
            if path == "/reset-later":
                await server.events["reset"].wait()
            conn.reset()
            return
        else:
            await conn.send(response())


# --------------------------------------------------------------------------------
# Helpers for the tests.


@asynccontextmanager
async def pooled_client(
    base_url: str, **limits: float | int
) -> AsyncIterator[tuple[httpx.AsyncClient, PooledTransport]]:
    """An httpx.AsyncClient on a fresh PooledTransport with these limits."""
    transport = PooledTransport(limits=httpx.Limits(**limits))  # type: ignore[arg-type]
    async with httpx.AsyncClient(
        transport=transport, base_url=base_url, timeout=httpx.Timeout(10)
    ) as client:
        yield client, transport


def assert_clean(transport: PooledTransport) -> None:
    """Nothing checked out, nobody waiting, every open connection idle."""
    stats = transport.stats()
    assert stats.in_use == 0, stats
    assert stats.waiting == 0, stats
    assert stats.open == stats.idle, stats


async def wait_for(condition: Callable[[], bool], seconds: float = 5) -> None:
    """Poll ``condition`` every 10 ms; fail after ``seconds``."""
    with trio.fail_after(seconds):
        while True:
            if condition():
                return
            await trio.sleep(0.01)


@asynccontextmanager
async def abandoned_generators_tolerated() -> AsyncIterator[None]:
    """Ignore the ResourceWarning trio gives for async generators dropped before
    their end, in this block and while they are finalized right after it.

    httpx's stream chain (``Response.aiter_bytes`` down to the transport's
    ``__aiter__``, and ``ByteStream.__aiter__`` for a request body) is made of
    async generators that nothing closes when a body is left half-read or a send
    is cancelled; httpx's own transport warns the same way. Trio closes each one
    in a system task, which drops the next: collect until all have run.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="Async generator .* was garbage collected",
            category=ResourceWarning,
        )
        yield
        for _ in range(10):
            gc.collect()
            await trio.testing.wait_all_tasks_blocked()


async def ok(client: httpx.AsyncClient, path: str = "/ok") -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.content == b"ok"


# --------------------------------------------------------------------------------
# 1. The server closes idle connections.


async def serve_with_idle_timeout(conn: Conn) -> None:
    """Keep-alive, but a connection idle for 0.2 s is closed by the server."""
    while True:
        with trio.move_on_after(0.2):
            head = await conn.request()
            if head is None:
                return
            await conn.send(response())
            continue
        return


async def test_connection_closed_by_server_idle_timeout_is_replaced() -> None:
    """The server closes the idle connection (its keep-alive timeout): the next
    request succeeds on a fresh connection, no error, nothing reused."""
    with trio.fail_after(10):
        async with (
            raw_server(serve_with_idle_timeout) as server,
            pooled_client(server.url) as (client, transport),
        ):
            await ok(client)
            assert transport.stats().idle == 1
            await wait_for(lambda: server.closed == 1)
            await ok(client)
            stats = transport.stats()
            assert (stats.created, stats.reused) == (2, 0)
            assert server.accepted == 2
            assert_clean(transport)
            await ok(client)  # the fresh one is kept alive and reused
            assert transport.stats().reused == 1
            assert server.accepted == 2


async def test_hypercorn_keep_alive_timeout_is_survived() -> None:
    """Against Hypercorn with keep_alive_timeout=0.2: requests spaced by the
    server's own closes all succeed; the closed connections are not reused."""
    settings = ServerSettings(keep_alive_timeout=0.2)
    with trio.fail_after(15):
        async with (
            serve_in_background(settings) as url,
            pooled_client(url) as (client, transport),
        ):
            assert (await client.get("/health")).status_code == 200
            # Hypercorn's close of the pool's idle connection cannot be seen from
            # here; a raw connection of our own, idle from a later moment, is
            # closed by the same timeout after it: its EOF is the signal.
            host, port = url.removeprefix("http://").rsplit(":", 1)
            probe = await trio.open_tcp_stream(host, int(port))
            async with probe:
                await probe.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                while await probe.receive_some():
                    pass  # the response, then EOF at the server's timeout
            assert (await client.get("/health")).status_code == 200
            stats = transport.stats()
            assert (stats.created, stats.reused) == (2, 0)
            assert_clean(transport)


# --------------------------------------------------------------------------------
# 2. Connection: close.


async def test_connection_close_responses_are_never_kept() -> None:
    """Every response says Connection: close: five requests succeed, each on a
    connection of its own; nothing is idle or open after."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            for n in range(1, 6):
                await ok(client, "/close")
                stats = transport.stats()
                assert (stats.created, stats.reused) == (n, 0)
                assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            assert server.accepted == 5
            await wait_for(lambda: server.closed == 5)
            assert_clean(transport)


# --------------------------------------------------------------------------------
# 3. Bodies.


async def test_content_length_and_chunked_bodies_reuse_the_connection() -> None:
    """Content-Length and chunked bodies, small, empty and 1 MiB, arrive intact,
    all on one connection: reused counts every request after the first."""
    paths = ["/cl/10", "/chunked/10", "/cl/0", "/cl/1048576", "/chunked/1048576"]
    paths += ["/cl/5"]
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            for n, path in enumerate(paths):
                response = await client.get(path)
                assert response.status_code == 200
                assert response.content == pattern(int(path.rsplit("/", 1)[1]))
                stats = transport.stats()
                assert (stats.created, stats.reused) == (1, n)
                assert (stats.open, stats.idle) == (1, 1)
            assert server.accepted == 1
            assert_clean(transport)


async def test_request_bodies_are_sent_whole() -> None:
    """A 1 MiB Content-Length request body and a chunked (async iterator) one are
    received exactly, on one reused connection."""
    big = pattern(1 << 20)

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 100_000):
            yield big[i : i + 100_000]

    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            assert (await client.post("/echo", content=big)).content == big
            assert (await client.post("/echo", content=pieces())).content == big
            assert [h.body for h in server.requests] == [big, big]
            assert "chunked" in server.requests[1].headers["transfer-encoding"]
            stats = transport.stats()
            assert (stats.created, stats.reused) == (1, 1)
            assert_clean(transport)


# --------------------------------------------------------------------------------
# 4. Streaming.


async def test_stream_read_to_the_end_returns_the_connection() -> None:
    """A streamed 1 MiB body read to the end with aiter_bytes: the connection goes
    back to idle and serves the next request."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            async with client.stream("GET", "/cl/1048576") as response:
                assert transport.stats().in_use == 1
                body = b"".join([chunk async for chunk in response.aiter_bytes()])
            assert body == pattern(1 << 20)
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (1, 1, 0)
            await ok(client)
            stats = transport.stats()
            assert (stats.created, stats.reused) == (1, 1)
            assert server.accepted == 1
            assert_clean(transport)


async def test_stream_closed_after_a_partial_read_discards_the_connection() -> None:
    """One chunk of a 1 MiB body read, then the stream closed: the connection is
    closed (the server sees it), not returned to idle; the pool serves on."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            await ok(client)
            async with abandoned_generators_tolerated():
                async with client.stream("GET", "/cl/1048576") as response:
                    async with aclosing(response.aiter_bytes()) as chunks:
                        assert await anext(chunks)
                del response, chunks
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            await wait_for(lambda: server.closed == 1)
            await ok(client)
            stats = transport.stats()
            assert (stats.created, stats.reused) == (2, 1)
            assert_clean(transport)


async def test_response_closed_unread_discards_the_connection() -> None:
    """send(stream=True) then aclose() without reading the 64 KiB body: the
    connection is discarded, the server sees the close, the next request works on a
    fresh connection."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            request = client.build_request("GET", "/cl/65536")
            response = await client.send(request, stream=True)
            assert response.status_code == 200
            assert transport.stats().in_use == 1
            await response.aclose()
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            await wait_for(lambda: server.closed == 1)
            await ok(client)
            assert transport.stats().created == 2
            assert_clean(transport)


# --------------------------------------------------------------------------------
# 8. A reset in the middle of a response.


@pytest.mark.parametrize("path", ["/reset", "/partial-then-eof"])
async def test_connection_broken_mid_body_raises_and_the_pool_recovers(
    path: str,
) -> None:
    """The server sends the head and 100 of 1000 bytes, then resets (RST) or just
    closes: ReadError or RemoteProtocolError, nothing left checked out, and the
    next request succeeds on a fresh connection."""

    async def handler(conn: Conn) -> None:
        if conn.number > 1:
            return await serve_routes(conn)
        head = await conn.request()
        assert head is not None
        await conn.send(response(pattern(1000))[:-900])
        if path == "/reset":
            conn.reset()
        return None

    with trio.fail_after(10):
        async with (
            raw_server(handler) as server,
            pooled_client(server.url) as (client, transport),
        ):
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await client.get(path)
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            assert_clean(transport)
            await ok(client)
            assert server.accepted == 2  # a fresh connection, not a retry loop
            assert_clean(transport)


async def test_reset_after_the_head_was_read_fails_the_body_read() -> None:
    """Streaming: the head has arrived, then the server resets: reading the body
    raises ReadError or RemoteProtocolError; the pool stays clean and usable."""
    with trio.fail_after(10):
        async with (
            raw_server() as server,
            pooled_client(server.url) as (client, transport),
        ):
            async with client.stream("GET", "/reset-later") as response:
                assert response.status_code == 200
                await server.events["partial"].wait()
                server.events["reset"].set()
                with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                    await response.aread()
            stats = transport.stats()
            assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
            await ok(client)
            assert server.accepted == 2
            assert_clean(transport)


# --------------------------------------------------------------------------------
# 9. A reused connection that the server has closed.


async def close_after_each_answer(conn: Conn) -> None:
    """Answer one request (without Connection: close), then close at once."""
    if await conn.request() is not None:
        await conn.send(response())


async def test_reused_connection_closed_right_after_the_answer() -> None:
    """The server closes each connection right after answering, without saying
    so: 20 back-to-back requests all succeed, each on a fresh connection (the dead
    one is dropped at checkout or retried once), one connection per request."""
    with trio.fail_after(10):
        async with (
            raw_server(close_after_each_answer) as server,
            pooled_client(server.url) as (client, transport),
        ):
            for _ in range(20):
                await ok(client)
            assert server.accepted == 20
            assert len(server.requests) <= 40  # at most one try on a dead one each
            assert transport.stats().created == 20
            assert_clean(transport)


def close_on_request(answered: int) -> Handler:
    """Answer the first request on the first ``answered`` connections; on any
    other request read it and close without a byte of response."""

    async def handler(conn: Conn) -> None:
        first = True
        while await conn.request() is not None:
            if not (first and conn.number <= answered):
                return
            first = False
            await conn.send(response())

    return handler


@pytest.mark.parametrize(
    ("method", "headers"),
    [("GET", {}), ("PUT", {}), ("POST", {"Idempotency-Key": "key-1"})],
)
async def test_reused_connection_dropped_at_the_request_is_retried_once(
    method: str, headers: dict[str, str]
) -> None:
    """The idle connection looks alive, but the server closes it on receiving the
    second request, answering nothing: the (idempotent) request is retried on a
    fresh connection, body and all, and succeeds; the caller sees no error."""
    with trio.fail_after(10):
        async with (
            raw_server(close_on_request(answered=2)) as server,
            pooled_client(server.url) as (client, transport),
        ):
            await ok(client)
            response = await client.request(
                method, "/echo", content=b"payload", headers=headers
            )
            assert response.status_code == 200
            assert server.accepted == 2
            assert [h.method for h in server.requests] == ["GET", method, method]
            assert server.requests[2].body == server.requests[1].body
            assert transport.stats().created == 2
            assert_clean(transport)


async def test_retry_on_a_fresh_connection_is_not_retried_again() -> None:
    """Every connection but the first closes without answering: the second request
    fails on the reused connection, is retried once on a fresh one, which fails
    too: an httpx transport error, after exactly two connections."""
    with trio.fail_after(10):
        async with (
            raw_server(close_on_request(answered=1)) as server,
            pooled_client(server.url) as (client, transport),
        ):
            await ok(client)
            with pytest.raises(httpx.TransportError):
                await client.get("/ok")
            assert server.accepted == 2
            assert len(server.requests) == 3
            await wait_for(lambda: server.closed == 2)
            stats = transport.stats()
            assert (stats.open, stats.created) == (0, 2)
            assert_clean(transport)


async def test_fresh_connection_failure_is_not_retried() -> None:
    """A server that closes every connection without answering: the first request
    fails with RemoteProtocolError on its fresh connection, without a retry."""
    with trio.fail_after(10):
        async with (
            raw_server(close_on_request(answered=0)) as server,
            pooled_client(server.url) as (client, transport),
        ):
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/ok")
            assert server.accepted == 1
            assert transport.stats().created == 1
            assert_clean(transport)


# --------------------------------------------------------------------------------
# 10. ResilientClient's choice of transport.


async def test_resilient_client_uses_the_pool_by_default() -> None:
    """ResilientClient() sends through a PooledTransport ("pooled") that reuses
    one connection for sequential calls to the Hypercorn server."""
    with trio.fail_after(15):
        async with serve_in_background() as url:
            async with ResilientClient(ClientConfig(base_url=url)) as client:
                assert client.transport == "pooled"
                transport = client.http_transport
                assert isinstance(transport, PooledTransport)
                for _ in range(3):
                    assert (await client.get("/health")).status_code == 200
                stats = transport.stats()
                assert (stats.created, stats.reused) == (1, 2)
                assert_clean(transport)


async def test_resilient_client_transport_choices() -> None:
    """transport="httpx" is httpx's own transport, not the pool; a transport= object is
    "custom" and is the one used; an unknown name is a ValueError."""
    with trio.fail_after(15):
        async with serve_in_background() as url:
            cfg = ClientConfig(base_url=url, transport="httpx")
            async with ResilientClient(cfg) as client:
                assert client.transport == "httpx"
                assert not isinstance(client.http_transport, PooledTransport)
                assert (await client.get("/health")).status_code == 200
    mock = httpx.MockTransport(lambda request: httpx.Response(204))
    async with ResilientClient(ClientConfig(), transport=mock) as client:
        assert client.transport == "custom"
        assert client.http_transport is mock
        assert (await client.get("http://service.test/x")).status_code == 204
    with pytest.raises(ValueError, match="transport"):
        ClientConfig(transport="nope")


def test_limits_config_defaults() -> None:
    """LimitsConfig defaults to httpx's: 100 connections, 20 kept alive, 5 s, and
    is ClientConfig's default."""
    assert LimitsConfig() == LimitsConfig(
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
    )
    assert ClientConfig().limits == LimitsConfig()


def test_two_trio_runs_each_with_a_fresh_pooled_client() -> None:
    """Two trio.run calls in one process, each with its own server and a fresh
    ResilientClient: both work (no pool state bound to the first run)."""

    async def one_run() -> tuple[int, int, int]:
        with trio.fail_after(15):
            async with serve_in_background() as url:
                async with ResilientClient(ClientConfig(base_url=url)) as client:
                    for _ in range(3):
                        assert (await client.get("/health")).status_code == 200
                    stats = client.http_transport.stats()
                    assert_clean(client.http_transport)
                    return stats.created, stats.reused, stats.in_use

    assert trio.run(one_run) == (1, 2, 0)
    assert trio.run(one_run) == (1, 2, 0)


# --------------------------------------------------------------------------------
# 11. Use after close.


CLOSED = "this PooledTransport is closed"


async def test_closed_transport_refuses_requests() -> None:
    """After aclose(), a request raises RuntimeError and opens nothing; a second
    aclose() is fine."""
    with trio.fail_after(10):
        async with raw_server() as server:
            transport = PooledTransport()
            async with httpx.AsyncClient(transport=transport) as client:
                await ok(client, f"{server.url}/ok")
                await transport.aclose()
                await wait_for(lambda: server.closed == 1)  # the idle one closed
                await transport.aclose()
                with pytest.raises(
                    RuntimeError, match="this PooledTransport is closed"
                ):
                    await transport.handle_async_request(
                        httpx.Request("GET", f"{server.url}/ok")
                    )
                with pytest.raises(
                    RuntimeError, match="this PooledTransport is closed"
                ):
                    await client.get(f"{server.url}/ok")
                assert server.accepted == 1
                stats = transport.stats()
                assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)


async def test_close_during_a_request_ends_it_and_closes_the_socket() -> None:
    """aclose() while a request waits for its answer: the request ends with an
    error (no hang), the server sees the socket closed, nothing stays open."""
    outcome: list[BaseException | None] = []

    async def call(client: httpx.AsyncClient, url: str) -> None:
        try:
            await client.get(url)
        except Exception as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    with trio.fail_after(10):
        async with raw_server() as server:
            transport = PooledTransport()
            async with httpx.AsyncClient(transport=transport) as client:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(call, client, f"{server.url}/hang")
                    await server.events["hang"].wait()
                    await transport.aclose()
                (error,) = outcome
                assert isinstance(error, Exception)
                await wait_for(lambda: server.closed == 1)
                stats = transport.stats()
                assert (stats.open, stats.idle, stats.in_use) == (0, 0, 0)
                assert stats.waiting == 0


async def test_a_plain_post_on_a_dropped_reused_connection_is_not_resent() -> None:
    """A POST with no idempotency key, dropped by the server on a reused
    connection: the server may have acted on it, so it is not sent again; the
    caller gets the transport error."""
    with trio.fail_after(10):
        async with (
            raw_server(close_on_request(answered=1)) as server,
            pooled_client(server.url) as (client, transport),
        ):
            await ok(client)
            with pytest.raises(httpx.TransportError):
                await client.post("/echo", content=b"payload")
            assert [h.method for h in server.requests] == ["GET", "POST"]
            assert server.accepted == 1
            assert_clean(transport)


async def test_the_resend_skips_the_other_idle_connections() -> None:
    """Two idle connections, both dropped by the server at their next request
    (as after a restart): the request found dead on one is resent on a fresh
    connection, not on the other dead one, and succeeds."""

    async def first_only(conn: Conn) -> None:
        """Answer a connection's first request (held on /hold/NAME until the
        test says); drop it at the second without a byte."""
        head = await conn.request()
        if head is None:
            return
        if head.path.startswith("/hold/"):
            name = head.path.removeprefix("/hold/")
            conn.server.events[f"got:{name}"].set()
            await conn.server.events[name].wait()
        await conn.send(response())
        await conn.request()

    with trio.fail_after(10):
        async with (
            raw_server(first_only) as server,
            pooled_client(server.url) as (client, transport),
        ):
            async with trio.open_nursery() as nursery:
                for name in ("a", "b"):
                    nursery.start_soon(ok, client, f"/hold/{name}")
                await server.events["got:a"].wait()
                await server.events["got:b"].wait()
                server.events["a"].set()
                server.events["b"].set()
            assert transport.stats().idle == 2
            await ok(client)
            assert server.accepted == 3
            stats = transport.stats()
            assert (stats.created, stats.idle) == (3, 2)
            assert_clean(transport)
