"""One HTTP/1.1 connection: h11's state machine over a Trio stream.

`PooledTransport` drives these directly rather than through httpcore's connection
objects: the request goes out in one write when its body is in memory, no lock or
trace context is entered per request, and the connection knows whether any byte of
the response arrived (what decides if a failed request on a reused connection may
be sent again). Every failure leaves here as the httpx exception httpx's own
transport would raise for it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import h11
import httpx
import trio

READ_SIZE = 64 * 1024
"""Bytes asked of the socket per read (httpcore's figure)."""
WRITE_BATCH = 64 * 1024
"""A request body is gathered up to this many bytes before it is written."""
MAX_INCOMPLETE_EVENT = 100 * 1024
"""h11's bound on a response head (httpcore's figure)."""

_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


def _socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType:
    if isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    assert isinstance(stream, trio.SocketStream)
    return stream.socket


class Connection:
    """An open connection to one origin, used by one request at a time.

    ``received`` tells whether any byte of the current response has arrived;
    ``idle_since`` is the `time.monotonic` reading when it was last returned to
    its pool (a process-wide clock: the pool may outlive one ``trio.run``).
    """

    __slots__ = ("_socket", "_stream", "closed", "h11", "idle_since", "key", "received")

    def __init__(self, key: Any, stream: trio.abc.Stream) -> None:
        self.key = key
        self._stream = stream
        self._socket = _socket_of(stream)
        self.h11 = h11.Connection(
            our_role=h11.CLIENT, max_incomplete_event_size=MAX_INCOMPLETE_EVENT
        )
        self.idle_since = 0.0
        self.received = False
        self.closed = False

    def close(self) -> None:
        """Close the socket now (no TLS close_notify: HTTP frames its bodies)."""
        if not self.closed:
            self.closed = True
            self._socket.close()

    def is_reusable(self) -> bool:
        """The exchange ended cleanly and both sides keep the connection open."""
        h = self.h11
        return not self.closed and h.our_state is h11.DONE and h.their_state is h11.DONE

    def recycle(self) -> None:
        """Ready the connection for its next request (after `is_reusable`)."""
        self.h11.start_next_cycle()
        self.received = False
        self.idle_since = time.monotonic()

    def seems_alive(self, now: float, expiry: float | None) -> bool:
        """Not idle past ``expiry`` and not closed by the server while idle (an
        idle socket that is readable can only be about to report EOF or a reset)."""
        if expiry is not None and now - self.idle_since > expiry:
            return False
        return not self._socket.is_readable()

    # -- one exchange ----------------------------------------------------------------

    async def send_request(
        self, request: httpx.Request, write_timeout: float | None
    ) -> None:
        """Write the request head and body: in one write when the body is in memory
        (up to `WRITE_BATCH` bytes per write), piece by piece as a streamed body
        produces them. A write that fails is not raised: the server may have
        answered early (a 413, say); reading the response tells."""
        h = self.h11
        stream = request.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        in_memory = isinstance(stream, httpx.ByteStream)
        try:
            pending = [
                h.send(
                    h11.Request(
                        method=request.method,
                        target=request.url.raw_path,
                        headers=request.headers.raw,
                    )
                )
                or b""
            ]
            size = len(pending[0])
            if not in_memory:  # the head now: the body may wait on the server
                await self._write(pending[0], write_timeout)
                pending, size = [], 0
            async for chunk in stream:
                data = h.send(h11.Data(data=chunk)) or b""
                pending.append(data)
                size += len(data)
                if size >= WRITE_BATCH or not in_memory:
                    await self._write(b"".join(pending), write_timeout)
                    pending, size = [], 0
            pending.append(h.send(h11.EndOfMessage()) or b"")
            await self._write(b"".join(pending), write_timeout)
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc)) from exc
        except httpx.WriteError:
            return

    async def receive_head(self, read_timeout: float | None) -> h11.Response:
        """Read up to the response's status line and headers (1xx skipped)."""
        while True:
            event = self._next_event()
            if event is h11.NEED_DATA:
                data = await self._read(read_timeout)
                if not data and self.h11.their_state is h11.SEND_RESPONSE:
                    raise httpx.RemoteProtocolError(
                        "Server disconnected without sending a response."
                    )
                self.h11.receive_data(data)
            elif type(event) is h11.Response:
                return event
            elif type(event) is h11.InformationalResponse and event.status_code == 101:
                raise httpx.RemoteProtocolError(
                    "the server switched protocols: upgrades need httpx's "
                    "transport (ClientConfig(transport='httpx'))"
                )

    async def receive_chunk(self, read_timeout: float | None) -> bytes | None:
        """The response body's next chunk, or None at the end of the message."""
        while True:
            event = self._next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await self._read(read_timeout))
            elif type(event) is h11.Data:
                return bytes(event.data)
            elif type(event) is h11.EndOfMessage or event is h11.PAUSED:
                return None

    # -- I/O, with httpx's exceptions ------------------------------------------------

    def _next_event(self) -> Any:
        try:
            return self.h11.next_event()
        except h11.RemoteProtocolError as exc:
            raise httpx.RemoteProtocolError(str(exc)) from exc

    async def _read(self, within: float | None) -> bytes:
        try:
            if within is None:
                data = await self._stream.receive_some(READ_SIZE)
            else:
                with trio.move_on_after(within) as scope:
                    data = await self._stream.receive_some(READ_SIZE)
                if scope.cancelled_caught:
                    raise httpx.ReadTimeout(f"no response data within {within:g}s")
        except _BROKEN as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__) from exc
        if data:
            self.received = True
        return bytes(data)

    async def _write(self, data: bytes, within: float | None) -> None:
        try:
            if within is None:
                await self._stream.send_all(data)
            else:
                with trio.move_on_after(within) as scope:
                    await self._stream.send_all(data)
                if scope.cancelled_caught:
                    raise httpx.WriteTimeout(f"request not written within {within:g}s")
        except _BROKEN as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__) from exc


class ResponseStream(httpx.AsyncByteStream):
    """A response body read off its connection; ``done(connection)`` runs once,
    when the body has ended or the response is closed, whichever comes first.

    An iterator object rather than an async generator: a body left half-read
    leaves no generator behind to be finalized later.
    """

    __slots__ = ("_connection", "_done", "_read_timeout")

    def __init__(
        self,
        connection: Connection,
        read_timeout: float | None,
        done: Callable[[Connection], None],
    ) -> None:
        self._connection: Connection | None = connection
        self._read_timeout = read_timeout
        self._done = done

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        connection = self._connection
        if connection is None:
            raise StopAsyncIteration
        try:
            chunk = await connection.receive_chunk(self._read_timeout)
        except BaseException:
            connection.close()  # cancelled or broken mid-body: never reused
            self._finish()
            raise
        if chunk is None:
            self._finish()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        connection = self._connection
        if connection is not None and not connection.is_reusable():
            connection.close()  # closed before the body's end
        self._finish()

    def _finish(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._done(connection)
