"""One HTTP/1.1 connection over a Trio stream: requests written here, responses
parsed by httptools (llhttp, Node's parser, in C).

`PooledTransport` drives these directly rather than httpcore's connection objects
(h11, pure Python: about 45 µs per exchange against 2 µs for llhttp here): the
request goes out in one write when its body is in memory, no lock or trace context
is entered per request, and the connection knows whether any byte of the response
arrived (what decides if a failed request on a reused connection may be sent
again). Every failure leaves here as the httpx exception httpx's own transport
would raise for it.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httptools
import httpx
import trio

READ_SIZE = 64 * 1024
"""Bytes asked of the socket per read (httpcore's figure)."""
MAX_HEAD = 100 * 1024
"""The longest response head accepted (h11's and httpcore's bound)."""

_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
T = TypeVar("T")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_valid_tokens: set[bytes] = set()
"""Header names and methods already checked (they repeat from request to request)."""


def _check_token(token: bytes, what: str) -> None:
    if token not in _valid_tokens:
        if not _TOKEN.fullmatch(token):
            raise httpx.LocalProtocolError(f"illegal {what}: {token!r}")
        if len(_valid_tokens) < 1024:
            _valid_tokens.add(token)


def request_head(request: httpx.Request) -> tuple[bytes, bool | None, bool]:
    """The request's head, how its body is framed (True: chunked; False: a
    Content-Length; None: no body) and whether it asks to close the connection."""
    method = request.method.encode("ascii", "replace")
    _check_token(method, "method")
    target = request.url.raw_path
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    chunked: bool | None = None
    close = False
    headers = request.headers.raw
    for name, value in headers:
        _check_token(name, "header name")
        lowered = name.lower()
        if lowered == b"content-length":
            chunked = False
        elif lowered == b"transfer-encoding":
            chunked = True
        elif lowered == b"connection" and b"close" in value.lower():
            close = True
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    head = b"".join(parts)
    # The only CR and LF are the line ends: no value or target smuggles one in.
    lines = len(headers) + 2
    if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
        raise httpx.LocalProtocolError("illegal character in the request head")
    return head, chunked, close


def describe(exc: BaseException) -> str:
    """A failure's message; trio's stream errors carry theirs in the cause (an
    `ssl.SSLError`, say)."""
    if str(exc):
        return str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause):
        return f"{type(exc).__name__}: {cause}"
    return type(exc).__name__


def _framed(piece: bytes, chunked: bool | None) -> bytes:
    """A piece of a request body as it goes on the wire."""
    if chunked is None:
        raise httpx.LocalProtocolError(
            "a request body needs Content-Length or Transfer-Encoding"
        )
    return b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece


def _check_length(sent: int, declared: int | None) -> None:
    if declared is not None and sent != declared:
        raise httpx.LocalProtocolError(
            f"the request body has {sent} bytes, its Content-Length {declared}"
        )


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

    __slots__ = (
        "_body",
        "_close_after",
        "_complete",
        "_head_done",
        "_headers",
        "_no_body",
        "_parser",
        "_plain",
        "_reason",
        "_sent",
        "_socket",
        "_stream",
        "closed",
        "idle_since",
        "key",
        "received",
    )

    def __init__(self, key: Any, stream: trio.abc.Stream) -> None:
        self.key = key
        self._stream = stream
        self._socket = _socket_of(stream)
        self._plain = not isinstance(stream, trio.SSLStream)
        self.idle_since = 0.0
        self.closed = False
        self._reset()

    def _reset(self) -> None:
        self.received = False
        self._parser: Any = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._reason = b""
        self._body: list[bytes] = []
        self._head_done = False
        self._complete = False
        self._sent = False
        self._close_after = False
        self._no_body = False

    def close(self) -> None:
        """Close the socket now (no TLS close_notify: HTTP frames its bodies)."""
        if not self.closed:
            self.closed = True
            self._socket.close()

    def is_reusable(self) -> bool:
        """The exchange ended cleanly and both sides keep the connection open."""
        return (
            self._complete
            and self._sent
            and not self._close_after
            and not (self.closed)
        )

    def recycle(self) -> None:
        """Ready the connection for its next request (after `is_reusable`)."""
        self._reset()
        self.idle_since = time.monotonic()

    def seems_alive(self, now: float, expiry: float | None) -> bool:
        """Not idle past ``expiry`` and not closed by the server while idle (an
        idle socket that is readable can only be about to report EOF or a reset)."""
        if expiry is not None and now - self.idle_since > expiry:
            return False
        return not self._socket.is_readable()

    # -- the parser's callbacks (httptools calls them by name) -----------------------

    def on_message_begin(self) -> None:
        self._headers = []

    def on_status(self, reason: bytes) -> None:
        self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        status = parser.get_status_code()
        if status >= 200 or status == 101:  # an interim 1xx is skipped
            self._head_done = True
            # Asked now: llhttp forgets it once the message is complete.
            if not parser.should_keep_alive():
                self._close_after = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if self._head_done:
            self._complete = True

    # -- one exchange ----------------------------------------------------------------

    async def send_request(
        self, request: httpx.Request, write_timeout: float | None
    ) -> None:
        """Write the request: in one write when the body is in memory, piece by
        piece as a streamed body produces them (`_send_stream`). A write that
        fails is not raised: the server may have answered early (a 413, say);
        reading the response tells."""
        head, chunked, self._close_after = request_head(request)
        self._no_body = request.method == "HEAD"
        stream = request.stream
        assert isinstance(stream, httpx.AsyncByteStream)
        declared = None
        if chunked is False:
            try:
                declared = int(request.headers["Content-Length"])
            except ValueError:
                raise httpx.LocalProtocolError(
                    f"illegal Content-Length: {request.headers['Content-Length']!r}"
                ) from None
        try:
            body = request.content if isinstance(stream, httpx.ByteStream) else None
        except httpx.RequestNotRead:
            body = None  # a ByteStream given as stream=: sent as it comes
        try:
            if body is not None:  # in memory: head, body and end in one write
                _check_length(len(body), declared)
                parts = [head, _framed(body, chunked)] if body else [head]
                if chunked:
                    parts.append(b"0\r\n\r\n")
                await self._write(b"".join(parts), write_timeout)
            else:  # the head now: the body may wait on the server
                await self._write(head, write_timeout)
                sent = await self._send_stream(stream, chunked, write_timeout)
                _check_length(sent, declared)
                if chunked:
                    await self._write(b"0\r\n\r\n", write_timeout)
        except httpx.WriteError:
            return
        self._sent = True

    async def _send_stream(
        self,
        stream: httpx.AsyncByteStream,
        chunked: bool | None,
        write_timeout: float | None,
    ) -> int:
        """Write each piece of a streamed body as it comes; the bytes sent. The
        iterator is closed however this ends (a write timeout, a cancellation)."""
        sent = 0
        pieces = aiter(stream)
        try:
            async for piece in pieces:
                if piece:
                    sent += len(piece)
                    await self._write(_framed(piece, chunked), write_timeout)
        finally:
            close = getattr(pieces, "aclose", None)
            if close is not None:
                await close()
        return sent

    async def receive_head(
        self, read_timeout: float | None
    ) -> tuple[int, list[tuple[bytes, bytes]], dict[str, Any]]:
        """The response's status, headers and httpx extensions (HTTP version,
        reason phrase), interim 1xx answers skipped."""
        self._parser = httptools.HttpResponseParser(self)
        seen = 0
        while not self._head_done:
            data = await self._read(read_timeout)
            if not data:
                raise httpx.RemoteProtocolError(
                    "Server disconnected without sending a response."
                    if seen == 0
                    else "Server disconnected in the middle of the response head."
                )
            seen += len(data)
            self._feed(data)
            if not self._head_done and seen > MAX_HEAD:
                raise httpx.RemoteProtocolError(
                    f"the response head is longer than {MAX_HEAD} bytes"
                )
        parser = self._parser
        status: int = parser.get_status_code()
        if status == 101:
            raise httpx.RemoteProtocolError(
                "the server switched protocols: upgrades need httpx's "
                "transport (ClientConfig(transport='httpx'))"
            )
        if self._no_body:  # llhttp cannot be told a HEAD answer has no body
            self._complete = True
            if self._body:
                self._close_after = True
            self._body = []
        version = b"HTTP/" + parser.get_http_version().encode("ascii")
        extensions = {"http_version": version, "reason_phrase": self._reason}
        return status, self._headers, extensions

    async def receive_chunk(self, read_timeout: float | None) -> bytes | None:
        """The response body's next piece, or None at the end of the message."""
        while True:
            if self._body:
                body = self._body
                self._body = []
                return body[0] if len(body) == 1 else b"".join(body)
            if self._complete:
                return None
            data = await self._read(read_timeout)
            if not data:
                if self._ends_at_close():
                    self._complete = True
                    self._close_after = True
                    return None
                raise httpx.RemoteProtocolError(
                    "peer closed connection without sending complete message body"
                )
            self._feed(data)

    def _ends_at_close(self) -> bool:
        """Whether the body is delimited by the connection's end (no length)."""
        names = {name.lower() for name, _ in self._headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._head_done = True  # status 101: refused by receive_head
        except httptools.HttpParserError as exc:
            raise httpx.RemoteProtocolError(
                f"malformed response: {exc}" if str(exc) else "malformed response"
            ) from exc

    # -- I/O, with httpx's exceptions ------------------------------------------------

    async def _read(self, within: float | None) -> bytes:
        data: bytes | bytearray
        if self._plain:
            data = await self._receive_on_socket(within)
        else:
            try:
                data = await _bounded(
                    within, _NO_DATA, self._stream.receive_some, READ_SIZE
                )
            except _BROKEN as exc:
                raise httpx.ReadError(describe(exc)) from exc
        if data:
            self.received = True
        return bytes(data)

    async def _write(self, data: bytes, within: float | None) -> None:
        if self._plain:
            await self._send_on_socket(data, within)
            return
        try:
            await _bounded(within, _NOT_WRITTEN, self._stream.send_all, data)
        except _BROKEN as exc:
            raise httpx.WriteError(describe(exc)) from exc

    # Plain TCP: read(2) and write(2) on the socket, waiting with trio.lowlevel
    # only when the kernel says so. A read is a checkpoint as trio's own are (the
    # cancellation check before, a schedule point after data was taken, or the
    # wait); a write that does not block only checks for cancellation: the read
    # of the answer that follows it is the schedule point. That saves one trip
    # through the scheduler, and trio's stream wrappers, per request. A closed
    # socket's descriptor is -1: never another socket's reused number.

    async def _receive_on_socket(self, within: float | None) -> bytes:
        await trio.lowlevel.checkpoint_if_cancelled()
        sock = self._socket
        try:
            data = os.read(sock.fileno(), READ_SIZE)
        except BlockingIOError:
            pass
        except OSError as exc:
            raise httpx.ReadError(describe(exc)) from exc
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return data
        while True:
            try:
                await _bounded(within, _NO_DATA, trio.lowlevel.wait_readable, sock)
                return os.read(sock.fileno(), READ_SIZE)
            except BlockingIOError:
                continue
            except (trio.ClosedResourceError, OSError) as exc:
                raise httpx.ReadError(describe(exc)) from exc

    async def _send_on_socket(self, data: bytes, within: float | None) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        sock = self._socket
        view = memoryview(data)
        sent = 0
        while True:
            try:
                sent += os.write(sock.fileno(), view[sent:])
            except BlockingIOError:
                pass
            except OSError as exc:
                raise httpx.WriteError(describe(exc)) from exc
            if sent >= len(data):
                return
            try:
                await _bounded(within, _NOT_WRITTEN, trio.lowlevel.wait_writable, sock)
            except (trio.ClosedResourceError, OSError) as exc:
                raise httpx.WriteError(describe(exc)) from exc


_NO_DATA = (httpx.ReadTimeout, "no response data")
_NOT_WRITTEN = (httpx.WriteTimeout, "request not written")


async def _bounded(
    within: float | None,
    expired: tuple[type[httpx.TimeoutException], str],
    operation: Callable[..., Awaitable[T]],
    *args: Any,
) -> T:
    """``await operation(*args)`` for at most ``within`` seconds (None: no
    bound); past that, ``expired``'s error: "<what> within <within>s"."""
    if within is None:
        return await operation(*args)
    with trio.move_on_after(within):
        return await operation(*args)
    error, what = expired
    raise error(f"{what} within {within:g}s")


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
