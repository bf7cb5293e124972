"""PooledTransport: an O(1) pool of HTTP/1.1 keep-alive connections for httpx on Trio.

Per origin, a LIFO stack of idle connections (the most recently used first: the one
least likely to have been closed by the server); all idle connections also sit in
one dict in the order they became idle, so the oldest can be expired or evicted
without a scan. A request that finds no idle connection and no free slot waits in
one FIFO queue; a released connection goes straight to the first waiter (or, if the
waiter wants another origin, is closed and its slot handed over). Checkout, return
and hand-over cost the same whether 1 or 1,000 requests are waiting.

The connections are `Connection`s (Trio sockets, responses parsed by httptools:
see ``_http11``); TLS
uses the SSL context httpx builds (`httpx.create_ssl_context`).
"""

from __future__ import annotations

import math
import ssl
import time
from collections import deque
from collections.abc import Collection
from typing import Any, TypeAlias

import attrs
import httpx
import trio

from ._config import IDEMPOTENT_METHODS
from ._http11 import Connection, ResponseStream, describe

DEFAULT_LIMITS = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
)
"""httpx's own defaults."""
RESENDABLE_METHODS = frozenset({*IDEMPOTENT_METHODS, "TRACE"})
"""RFC 9110's idempotent methods (the hedged ones, and TRACE)."""
_DEFAULT_PORTS = {b"http": 80, b"https": 443}

Origin: TypeAlias = tuple[bytes, bytes, int]


@attrs.frozen
class PoolStats:
    """A snapshot of a `PooledTransport`.

    ``open``: connections open or being opened; ``idle``: kept alive, unused;
    ``in_use``: serving a request; ``waiting``: requests queued for a slot;
    ``created``: connections ever opened; ``reused``: requests sent on a
    connection that had served one before.
    """

    open: int
    idle: int
    in_use: int
    waiting: int
    created: int
    reused: int


class _Waiter:
    __slots__ = ("abandoned", "connection", "event", "granted", "origin")

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.event = trio.Event()
        self.granted = False
        self.abandoned = False
        self.connection: Connection | None = None
        """What was handed over: a connection to ``origin``, or None for a slot."""


class PooledTransport(httpx.AsyncBaseTransport):
    """httpx's transport for HTTP/1.1 over Trio, with a pool that stays O(1).

    Use it as ``httpx.AsyncClient(transport=PooledTransport())``; `ResilientClient`
    uses it by default. ``limits`` is an `httpx.Limits`: at most
    ``max_connections`` open in all, at most ``max_keepalive_connections`` idle,
    none reused after ``keepalive_expiry`` idle seconds. A request waits for a slot
    at most its ``pool`` timeout, then raises `httpx.PoolTimeout`.

    A connection the server closed while idle is never handed out. A request that
    fails on a reused connection before any byte of the response arrived is sent
    once more on a fresh connection if its body is in memory and it is idempotent:
    by its method, or by carrying one of ``idempotency_headers``.

    Only ``http://`` and ``https://`` URLs over TCP, HTTP/1.1: HTTP/2, proxies and
    Unix sockets need httpx's own transport.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        limits: httpx.Limits = DEFAULT_LIMITS,
        local_address: str | None = None,
        idempotency_headers: Collection[str] = ("Idempotency-Key", "X-Request-ID"),
    ) -> None:
        self._ssl_context = httpx.create_ssl_context(
            verify=verify, cert=cert, trust_env=trust_env
        )
        self._ssl_context.set_alpn_protocols(["http/1.1"])
        self._local_address = local_address
        self._idempotency_headers = tuple(idempotency_headers)
        self._max_open = (
            math.inf if limits.max_connections is None else limits.max_connections
        )
        self._max_idle = (
            math.inf
            if limits.max_keepalive_connections is None
            else limits.max_keepalive_connections
        )
        self._expiry = limits.keepalive_expiry
        self._stacks: dict[Origin, deque[Connection]] = {}
        self._idle: dict[Connection, None] = {}
        self._in_use: set[Connection] = set()
        self._waiters: deque[_Waiter] = deque()
        self._waiting = 0
        self._open = 0
        self._created = 0
        self._reused = 0
        self._closed = False

    def stats(self) -> PoolStats:
        return PoolStats(
            open=self._open,
            idle=len(self._idle),
            in_use=len(self._in_use),
            waiting=self._waiting,
            created=self._created,
            reused=self._reused,
        )

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close every connection, idle or in use (a request in flight then fails
        with a network error); later requests raise `RuntimeError`."""
        self._closed = True
        for connection in [*self._idle, *self._in_use]:
            connection.close()
        self._open -= len(self._idle)
        self._idle.clear()
        self._stacks.clear()
        for waiter in self._waiters:  # woken empty-handed: they raise
            if not waiter.abandoned:
                waiter.abandoned = True
                self._waiting -= 1
                waiter.event.set()
        self._waiters.clear()
        await trio.lowlevel.checkpoint()

    # -- one request -----------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise RuntimeError("this PooledTransport is closed")
        url = request.url
        scheme = url.raw_scheme
        default_port = _DEFAULT_PORTS.get(scheme)
        if default_port is None:
            raise httpx.UnsupportedProtocol(
                f"PooledTransport sends http:// and https:// only, not {url.scheme}://"
            )
        origin = (scheme, url.raw_host, url.port or default_port)
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        retry = True
        while True:
            connection, reused = await self._checkout(origin, url, timeouts, not retry)
            try:
                await connection.send_request(request, timeouts.get("write"))
                status, headers, extensions = await connection.receive_head(
                    read_timeout
                )
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
                stale = reused and not connection.received
                connection.close()
                self._check_in(connection)
                if stale and retry and self._may_resend(request):
                    retry = False
                    continue
                raise
            except BaseException:
                connection.close()
                self._check_in(connection)
                raise
            return httpx.Response(
                status_code=status,
                headers=headers,
                stream=ResponseStream(connection, read_timeout, self._check_in),
                extensions=extensions,
            )

    def _may_resend(self, request: httpx.Request) -> bool:
        if not isinstance(request.stream, httpx.ByteStream):
            return False  # a streamed body may not be readable twice
        if request.method in RESENDABLE_METHODS:
            return True
        headers = request.headers
        return any(name in headers for name in self._idempotency_headers)

    # -- checkout and return ---------------------------------------------------------

    async def _checkout(
        self,
        origin: Origin,
        url: httpx.URL,
        timeouts: dict[str, float | None],
        fresh: bool = False,
    ) -> tuple[Connection, bool]:
        """A connection to ``origin`` and whether it served a request before;
        ``fresh``: not one of the idle ones (a resend after one was found dead:
        its idle siblings may be too)."""
        stack = None if fresh else self._stacks.get(origin)
        if stack:
            now = time.monotonic()
            while stack:
                connection = stack.pop()
                del self._idle[connection]
                if connection.seems_alive(now, self._expiry):
                    self._in_use.add(connection)
                    self._reused += 1
                    return connection, True
                connection.close()
                self._free_slot()
        if self._waiting == 0 and self._open < self._max_open:
            self._open += 1
        elif self._waiting == 0 and self._idle:
            self._evict_oldest()  # its slot passes to this request
        else:
            handed = await self._wait_for_slot(origin, timeouts.get("pool"))
            if handed is not None:
                self._in_use.add(handed)
                self._reused += 1
                return handed, True
        # This request holds a slot now; it gives it back if it cannot connect.
        try:
            connection = await self._connect(origin, url, timeouts.get("connect"))
        except BaseException:
            self._free_slot()
            raise
        self._created += 1
        self._in_use.add(connection)
        if self._closed:  # closed while this one was being opened
            self._check_in(connection)
            raise RuntimeError("this PooledTransport is closed")
        return connection, False

    async def _wait_for_slot(
        self, origin: Origin, within: float | None
    ) -> Connection | None:
        waiter = _Waiter(origin)
        self._waiters.append(waiter)
        self._waiting += 1
        try:
            with trio.move_on_after(math.inf if within is None else within):
                await waiter.event.wait()
        except BaseException:
            self._leave(waiter)
            raise
        if not waiter.granted:
            self._leave(waiter)
            if self._closed:
                raise RuntimeError("this PooledTransport is closed")
            raise httpx.PoolTimeout(
                f"no connection free within {within:g}s "
                f"({self._open} open, {self._waiting} waiting)"
            )
        return waiter.connection

    def _leave(self, waiter: _Waiter) -> None:
        """A waiter gives up; what it was handed, if anything, goes back."""
        if not waiter.granted:
            if not waiter.abandoned:
                waiter.abandoned = True
                self._waiting -= 1
        elif waiter.connection is not None:
            self._return(waiter.connection)
        else:
            self._free_slot()

    def _check_in(self, connection: Connection) -> None:
        """A request is done with ``connection`` (closed if not reusable)."""
        self._in_use.discard(connection)
        if connection.is_reusable():
            connection.recycle()
            self._return(connection)
        else:
            connection.close()
            self._free_slot()

    def _return(self, connection: Connection) -> None:
        if self._closed:
            connection.close()
            self._free_slot()
            return
        waiter = self._next_waiter()
        if waiter is not None:
            if waiter.origin == connection.key:
                waiter.connection = connection
            else:
                connection.close()  # the waiter opens its own, in this slot
            waiter.event.set()
            return
        self._expire_idle()
        if len(self._idle) >= self._max_idle:
            connection.close()
            self._open -= 1
            return
        stack = self._stacks.get(connection.key)
        if stack is None:
            stack = self._stacks[connection.key] = deque()
        stack.append(connection)
        self._idle[connection] = None

    def _free_slot(self) -> None:
        waiter = self._next_waiter()
        if waiter is None:
            self._open -= 1
        else:
            waiter.event.set()

    def _next_waiter(self) -> _Waiter | None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.abandoned:
                waiter.granted = True
                self._waiting -= 1
                return waiter
        return None

    def _expire_idle(self) -> None:
        """Close the connections idle longer than the keep-alive expiry (the
        oldest first, stopping at the first that is not)."""
        if self._expiry is None:
            return
        limit = time.monotonic() - self._expiry
        while self._idle:
            oldest = next(iter(self._idle))
            if oldest.idle_since >= limit:
                return
            self._evict_oldest()
            self._open -= 1

    def _evict_oldest(self) -> None:
        """Close the connection idle longest; its slot stays counted as open."""
        oldest = next(iter(self._idle))
        del self._idle[oldest]
        stack = self._stacks[oldest.key]
        stack.popleft()  # the oldest of its origin too
        if not stack:
            del self._stacks[oldest.key]
        oldest.close()

    # -- opening ---------------------------------------------------------------------

    async def _connect(
        self, origin: Origin, url: httpx.URL, within: float | None
    ) -> Connection:
        scheme, _, port = origin
        host = url.host
        try:
            with trio.move_on_after(math.inf if within is None else within) as scope:
                stream: trio.abc.Stream = await trio.open_tcp_stream(
                    host, port, local_address=self._local_address
                )
                if scheme == b"https":
                    tls = trio.SSLStream(
                        stream,
                        self._ssl_context,
                        server_hostname=host,
                        https_compatible=True,
                    )
                    try:
                        await tls.do_handshake()
                    except BaseException:
                        await trio.aclose_forcefully(stream)
                        raise
                    stream = tls
        except (OSError, trio.BrokenResourceError) as exc:
            raise httpx.ConnectError(describe(exc)) from exc
        if scope.cancelled_caught:
            raise httpx.ConnectTimeout(f"not connected within {within:g}s")
        return Connection(origin, stream)
