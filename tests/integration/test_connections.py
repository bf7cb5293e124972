"""How connections end, seen from raw sockets against a real server.

httpx would hide what these pin: when the server closes a connection (EOF), which
responses carry ``Connection: close``, and what a client that hangs up is logged as.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress

import attrs
import trio
from structlog.testing import capture_logs

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background

from .conftest import cli_server
from .test_server_http import wait_until_msg_in_flight

# Raw requests; HTTP/1.1 keeps the connection alive unless told otherwise.
HEALTH = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
SLOW = b"GET /msg?delay=%d HTTP/1.1\r\nHost: localhost\r\n\r\n"


@attrs.define
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def closes(self) -> bool:
        return "close" in self.headers.get("connection", "").lower()


@attrs.define(eq=False)
class RawConnection:
    """A client socket that reads whole Content-Length responses, and EOF."""

    stream: trio.SocketStream
    pending: bytes = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _more(self) -> bytes:
        try:
            chunk = await self.stream.receive_some()
        except trio.BrokenResourceError:  # a reset: the server is gone too
            chunk = b""
        self.pending += chunk
        return chunk

    async def response(self) -> Response:
        while b"\r\n\r\n" not in self.pending:
            if not await self._more():
                raise AssertionError(f"EOF inside a response: {self.pending!r}")
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            key = name.strip().lower()
            headers[key] = ", ".join(filter(None, [headers.get(key), value.strip()]))
        length = int(headers["content-length"])
        while len(self.pending) < length:
            if not await self._more():
                raise AssertionError("EOF inside a response body")
        body, self.pending = self.pending[:length], self.pending[length:]
        return Response(int(status_line.split()[1]), headers, body)

    async def response_or_eof(self) -> Response | None:
        """The next response, or None if the server closes without sending one."""
        if not self.pending and not await self._more():
            return None
        return await self.response()

    async def wait_eof(self) -> None:
        """Return at EOF; anything else the server sends first is an error."""
        while await self._more():
            pass
        assert self.pending == b"", f"more data before EOF: {self.pending!r}"


@asynccontextmanager
async def connect(base_url: str) -> AsyncIterator[RawConnection]:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        yield RawConnection(stream)


async def wait_until_refusing(base_url: str) -> None:
    """Poll until the server no longer accepts connections (it is shutting down)."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with trio.fail_after(10):
        while True:
            try:
                stream = await trio.open_tcp_stream(host, int(port))
            except OSError:
                return
            await stream.aclose()
            await trio.sleep(0.01)


async def _serve_until(
    settings: ServerSettings,
    stop: trio.Event,
    *,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    async with serve_in_background(settings) as base_url:
        task_status.started(base_url)
        await stop.wait()


async def test_connection_close_request_is_followed_by_eof() -> None:
    """A response to `Connection: close` says so and EOF follows within 0.5 s."""
    async with serve_in_background() as base_url, connect(base_url) as conn:
        await conn.send(
            b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        with trio.fail_after(5):
            response = await conn.response()
        assert response.status == 200
        assert response.closes
        with trio.fail_after(0.5):
            await conn.wait_eof()


async def test_a_connection_serves_more_than_1000_requests_without_an_error() -> None:
    """Hypercorn would close it after its 1000th request, racing that response's
    last write (an "unhandled error" logged); here it stays open."""
    msg = b"GET /msg HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with capture_logs() as logs:
        async with serve_in_background() as base_url, connect(base_url) as conn:
            for n in range(1_100):
                await conn.send(msg)
                with trio.fail_after(5):
                    response = await conn.response()
                assert (response.status, response.closes) == (200, False), n
    assert [e for e in logs if e["log_level"] == "error"] == []


async def test_http_1_0_response_is_followed_by_eof() -> None:
    """A response to an HTTP/1.0 request is followed by EOF within 0.5 s."""
    async with serve_in_background() as base_url, connect(base_url) as conn:
        await conn.send(b"GET /health HTTP/1.0\r\n\r\n")
        with trio.fail_after(5):
            response = await conn.response()
        assert response.status == 200
        with trio.fail_after(0.5):
            await conn.wait_eof()


async def test_idle_keep_alive_connection_closes_after_the_timeout() -> None:
    """A keep-alive connection serves several requests, then closes once idle for
    keep_alive_timeout."""
    settings = ServerSettings(keep_alive_timeout=0.5)
    async with serve_in_background(settings) as base_url, connect(base_url) as conn:
        with trio.fail_after(5):
            for _ in range(2):
                await conn.send(HEALTH)
                response = await conn.response()
                assert response.status == 200
                assert not response.closes
            idle_since = trio.current_time()
            await conn.wait_eof()
        assert trio.current_time() - idle_since >= 0.4


async def test_sigterm_with_idle_connections_exits_at_once() -> None:
    """SIGTERM with 20 idle keep-alive connections open: exit 0 within 1 s, and
    every connection sees EOF."""
    async with cli_server() as server, AsyncExitStack() as streams:
        connections: list[RawConnection] = []
        for _ in range(20):
            conn = await streams.enter_async_context(connect(server.base_url))
            await conn.send(HEALTH)
            with trio.fail_after(5):
                assert (await conn.response()).status == 200
            connections.append(conn)
        server.terminate()
        with trio.fail_after(1):
            assert await server.process.wait() == 0
        with trio.fail_after(5):
            for conn in connections:
                await conn.wait_eof()


async def test_client_hang_up_is_logged_as_499() -> None:
    """A client that hangs up during /msg?delay=2000 gives one log line: status
    499, outcome client_closed, at info level."""
    with capture_logs() as logs:
        async with serve_in_background() as base_url:
            async with connect(base_url) as conn:
                await conn.send(SLOW % 2000)
                await wait_until_msg_in_flight(base_url)
            with trio.fail_after(10):
                while True:
                    if any(e.get("path") == "/msg" for e in logs):
                        break
                    await trio.sleep(0.01)
    (line,) = [e for e in logs if e["event"] == "request" and e["path"] == "/msg"]
    assert line["status"] == 499
    assert line["outcome"] == "client_closed"
    assert line["log_level"] == "info"


async def test_early_error_response_closes_the_connection() -> None:
    """A response sent before the request body arrived carries Connection: close
    and the connection closes, instead of leaving it silent."""
    body = b'{"name": "late"}'
    patch = (
        b"PATCH /api/v1/items HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    async with serve_in_background() as base_url, connect(base_url) as conn:
        await conn.send(patch)
        with trio.fail_after(5):
            response = await conn.response()  # 405, answered without the body
        assert response.status == 405
        assert response.closes
        with suppress(trio.BrokenResourceError):  # the server may have closed already
            await conn.send(body + HEALTH)
        with trio.fail_after(5):
            await conn.wait_eof()  # no answer to the GET: the connection ended


async def test_responses_during_shutdown_close_their_connections() -> None:
    """Once the server is stopping, an in-flight response carries Connection: close
    and EOF follows; an idle connection is closed, never served as keep-alive."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        base_url = await nursery.start(_serve_until, ServerSettings(), stop)
        async with connect(base_url) as busy, connect(base_url) as idle:
            await idle.send(HEALTH)
            with trio.fail_after(5):
                assert not (await idle.response()).closes
            await busy.send(SLOW % 1000)
            await wait_until_msg_in_flight(base_url)
            stop.set()
            await wait_until_refusing(base_url)
            with suppress(trio.BrokenResourceError):  # closed already, as it should be
                await idle.send(HEALTH)
            with trio.fail_after(5):
                late = await idle.response_or_eof()
                assert late is None or late.closes
                await idle.wait_eof()
                response = await busy.response()
                assert response.status == 200
                assert response.closes
                await busy.wait_eof()
