"""Where a request meets its connection: the exchange's progress and how it ends.

`ConnectionMiddleware` is the outermost layer. It records each exchange's progress in
an `Exchange` (put in the scope for the layers below) and makes every response leave
its connection as HTTP says: closed after ``Connection: close``, HTTP/1.0 or an
unread request body, closed during shutdown, otherwise kept alive until Hypercorn's
``keep_alive_timeout``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import trio

from ._asgi import EXCHANGE_KEY, ASGIApp, Message, Receive, Scope, Send, find_header

CLOSE = (b"connection", b"close")
NO_BODY_STATUSES = frozenset({204, 304})
"""Statuses whose responses have no body (RFC 9110 sections 15.3.5, 15.4.5)."""
_HTTP1 = frozenset({"1.0", "1.1"})


def _never() -> bool:
    return False


class Exchange:
    """How far one request and its response got, read off the ASGI messages.

    ``receive`` and ``send`` wrap the server's callables; every layer below the
    outermost one uses them (through the scope, under `EXCHANGE_KEY`), so each layer
    sees the same progress without wrapping the callables again. ``outcome`` is set
    by whatever ends the request other than its route ("timeout", "shed", "error",
    "cancelled", "refused", and the faults "reset", "closed", "truncated"; see
    `RequestLoggingMiddleware`); None otherwise.
    """

    __slots__ = (
        "_head",
        "_http1",
        "_on_end",
        "_receive",
        "_send",
        "_stopping",
        "_unsent",
        "body_pending",
        "client_gone",
        "fault",
        "fault_kind",
        "finished",
        "outcome",
        "replayed",
        "started",
        "status",
    )

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, stopping: Callable[[], bool]
    ) -> None:
        self._receive = receive
        self._send = send
        self._stopping = stopping
        # HTTP/2 and 3 have no Connection header (h2 refuses to send one); their
        # streams end on their own, and Hypercorn ends the connection at shutdown.
        self._http1 = scope.get("http_version") in _HTTP1
        self._head = scope.get("method") == "HEAD"
        self.body_pending = announces_body(scope)
        """The request has a body that has not been received in full yet."""
        self.client_gone = False
        """The client hung up before the response was complete."""
        self.started = False
        self.finished = False
        """The whole response has been handed to the server: its final message,
        the body bytes that complete its ``Content-Length``, or its head when it
        has no body (HEAD, 204, 304, ``Content-Length: 0``)."""
        self._unsent: int | None = None
        """Body bytes the response's ``Content-Length`` still promises."""
        self.status = 0
        self.outcome: str | None = None
        self.fault: str | None = None
        """The id of the fault rule that fired for this request, if one did."""
        self.fault_kind: str | None = None
        """What that rule did (its action's ``kind``: "status", "reset", ...)."""
        self.replayed = False
        """The route answered with an earlier request's idempotent result."""
        self._on_end: Callable[[], None] | None = None

    def on_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the exchange ends (see `end`)."""
        self._on_end = callback

    def end(self) -> None:
        """The exchange is over as far as the client can tell: run the `on_end`
        callback, once. Called just before the last byte of a response leaves
        (the write completing its ``Content-Length``, its final message, or its
        head when it has no body), and
        before a fault drops the connection, so that what the callback records
        (the request log, the journal, the metrics) is there before the client
        can see the end; the outermost layers call it again when the request
        returns, for every other ending."""
        callback, self._on_end = self._on_end, None
        if callback is not None:
            callback()

    @property
    def server_send(self) -> Send:
        """The server's own ``send``, for reaching its transport (`_transport`)."""
        return self._send

    async def receive(self) -> Message:
        message = await self._receive()
        kind = message["type"]
        if kind == "http.request":
            if not message.get("more_body", False):
                self.body_pending = False
        elif kind == "http.disconnect" and not self.finished:
            self.client_gone = True
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.status = message["status"]
            headers = message.get("headers", ())
            if (
                self._http1
                and (self.body_pending or self._stopping())
                and CLOSE not in headers
            ):
                # An unread body would be taken for the next request; a stopping
                # server keeps no connection. Either way the client must know.
                message["headers"] = [*headers, CLOSE]
            self._unsent = _content_length(headers)
            if self._head or self._unsent == 0 or self.status in NO_BODY_STATUSES:
                # The head is the whole response: the client has it once written.
                self.finished = True
                self.end()
        elif kind != "http.response.body":
            pass
        elif message.get("more_body", False):
            # Quart sends a body, then an empty final message: the client has
            # the whole response once the bytes its Content-Length promises are
            # written, before that final message.
            if self._unsent is not None and (body := message.get("body", b"")):
                self._unsent -= len(body)
                if self._unsent <= 0:
                    self.finished = True
                    self.end()
        else:
            self.finished = True
            self.end()
            # Hypercorn runs the connection's end of the exchange (recycle it for
            # the next request or close it, start its idle timer) inside this call,
            # and delivers ``http.disconnect`` on the way; Quart-Trio cancels the
            # app when it sees that. Cancelled here, the connection would be left
            # open forever (hypercorn issue 106), so this call is not cancellable.
            with trio.CancelScope(shield=True):
                await self._send(message)
            return
        await self._send(message)


def _content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    value = find_header(headers, b"content-length")
    return int(value) if value is not None and value.isdigit() else None


def announces_body(scope: Scope) -> bool:
    """Whether the request says a body follows it.

    Over HTTP/1 a body is announced by a ``Content-Length`` other than 0 or by
    ``Transfer-Encoding`` (RFC 9112 section 6.3); HTTP/2 and 3 need neither, so
    there a ``Content-Type`` alone announces one too.
    """
    typed = False
    for key, value in scope.get("headers", ()):
        name = key.lower()
        if name == b"content-length":
            return bool(value.strip(b" 0"))
        if name == b"transfer-encoding":
            return True
        if name == b"content-type":
            typed = True
    return typed and scope.get("http_version") not in _HTTP1


class ConnectionMiddleware:
    """The outermost layer: one `Exchange` per request, ending as HTTP says.

    ``stopping()`` tells whether the server has been told to shut down; responses
    started after that carry ``Connection: close`` and end their connection, as do
    responses sent before the request body was read (instead of leaving a
    connection whose next bytes are the rest of an old body).
    """

    def __init__(
        self, app: ASGIApp, stopping: Callable[[], bool] | None = None
    ) -> None:
        self.app = app
        self.stopping = _never if stopping is None else stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        exchange = scope[EXCHANGE_KEY] = Exchange(scope, receive, send, self.stopping)
        return await self.app(scope, exchange.receive, exchange.send)
