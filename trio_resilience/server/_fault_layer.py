"""The fault layer: where a firing rule makes its request fail.

`FaultMiddleware` sits just inside the concurrency limit, so a faulted request holds
a slot like a real one, and before every route, so a failure wins over a cached
idempotent answer. Control routes (`CONTROL_PREFIXES`) are never faulted. The rule
that fired is written on the exchange (``Exchange.fault``) for the request log and
the journal.

What each action looks like to a client (httpx names):

- status: that status, ``Retry-After`` if set, the JSON body (default
  ``{"detail": "Induced server failure"}``; none for 204 and 304); the route does
  not run.
- delay: the route's own answer, ``delay_ms`` + up to ``jitter_ms`` later.
- reset: `httpx.ReadError` (TCP RST); close: `httpx.RemoteProtocolError`, no
  response (see `_transport`); the request body, if any, is read first for close.
- hang: nothing until the client gives up (its own timeout, `httpx.ReadTimeout`)
  or the server's ``request_timeout`` ends the request with 504.
- drip: the route's status and headers at once, then its body a byte at a time
  (at most one write per millisecond) so that the last byte leaves ``drip_ms``
  after the headers.
- truncate: the route's status and headers with a ``Content-Length`` of its whole
  body (at least 1), half the body, then the connection closes:
  `httpx.RemoteProtocolError` ("peer closed connection without sending complete
  message body").
- commit_then_fail: the route runs (its side effect happens, an idempotent
  answer is cached), then the client gets the given status with the default body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio

from ._asgi import (
    CONTROL_PREFIXES,
    EXCHANGE_KEY,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    send_json_payload,
)
from ._connections import NO_BODY_STATUSES, Exchange
from ._drip import drip_body
from ._fault_rules import (
    CommitThenFailAction,
    ConnectionAction,
    DelayAction,
    DripAction,
    FaultRule,
    StatusAction,
    TruncateAction,
)
from ._faults import INDUCED_FAILURE
from ._guards import drop_body
from ._transport import close, connection_stream, reset

RuleCheck = Callable[
    [str, str, Sequence[tuple[bytes, bytes]]], Awaitable[FaultRule | None]
]
"""Which rule fires for a request (method, path, headers), if any."""


class FaultMiddleware:
    """Checks each request against the plan and carries out the rule that fires."""

    def __init__(self, app: ASGIApp, check: RuleCheck) -> None:
        self.app = app
        self.check = check

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIXES):
            return await self.app(scope, receive, send)
        rule = await self.check(scope["method"], scope["path"], scope["headers"])
        if rule is None:
            return await self.app(scope, receive, send)
        exchange: Exchange = scope[EXCHANGE_KEY]
        exchange.fault = rule.id
        exchange.fault_kind = rule.action.kind
        await self._perform(rule, exchange, scope, receive, send)
        return None

    async def _perform(
        self,
        rule: FaultRule,
        exchange: Exchange,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        action = rule.action
        if isinstance(action, StatusAction):
            await send_status(send, action.status, action.body, action.retry_after)
        elif isinstance(action, DelayAction):
            await trio.sleep(
                action.delay_ms / 1000 + rule.jitter_seconds(action.jitter_ms)
            )
            await self.app(scope, receive, send)
        elif isinstance(action, ConnectionAction):
            await _end_connection(action.kind, exchange, receive)
        else:
            response = await _run_captured(self.app, scope, receive)
            if isinstance(action, CommitThenFailAction):
                await send_status(send, action.status, None, None)
            elif isinstance(action, DripAction):
                await _drip(response, action.drip_ms, receive, send)
            else:
                assert isinstance(action, TruncateAction)
                exchange.outcome = "truncated"
                await _truncate(response, send)
                exchange.end()


async def send_status(
    send: Send, status: int, body: Any, retry_after: int | str | None
) -> None:
    """A whole JSON response of ``status`` (no body for 204 and 304)."""
    headers = []
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode("latin-1")))
    if status in NO_BODY_STATUSES:
        await send(
            {"type": "http.response.start", "status": status, "headers": headers}
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    payload = json.dumps(
        INDUCED_FAILURE if body is None else body, separators=(",", ":")
    ).encode()
    await send_json_payload(send, status, payload, headers)


async def _until_disconnect(receive: Receive) -> None:
    """Read (and drop) what arrives until the client leaves."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _end_connection(kind: str, exchange: Exchange, receive: Receive) -> None:
    if kind == "hang":
        await _until_disconnect(receive)
        return
    stream = connection_stream(exchange.server_send)
    if kind == "close":
        await drop_body(receive, exchange)  # unread bytes would make it a reset
        if exchange.client_gone:
            return
    exchange.outcome = "reset" if kind == "reset" else "closed"
    exchange.end()  # journaled before the client can see the connection go
    if stream is not None:
        await (reset if kind == "reset" else close)(stream)


@attrs.define
class _Response:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = attrs.field(factory=list)
    body: bytearray = attrs.field(factory=bytearray)

    def start(self, length: int) -> Message:
        """The route's status and headers, framed by a ``Content-Length`` of
        ``length``."""
        kept = [
            (name, value)
            for name, value in self.headers
            if name.lower() not in (b"content-length", b"transfer-encoding")
        ]
        headers = [*kept, (b"content-length", str(length).encode())]
        return {
            "type": "http.response.start",
            "status": self.status,
            "headers": headers,
        }


async def _run_captured(app: ASGIApp, scope: Scope, receive: Receive) -> _Response:
    """Run the route, keeping its response instead of sending it."""
    response = _Response()

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            response.body += message.get("body", b"")

    await app(scope, receive, capture)
    return response


async def _drip(
    response: _Response, drip_ms: int, receive: Receive, send: Send
) -> None:
    body = bytes(response.body)
    await send(response.start(len(body)))

    async def watch_disconnect(cancel_scope: trio.CancelScope) -> None:
        await _until_disconnect(receive)
        cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_disconnect, nursery.cancel_scope)
        async for piece in drip_body(body, drip_ms / 1000):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        nursery.cancel_scope.cancel()


async def _truncate(response: _Response, send: Send) -> None:
    body = bytes(response.body)
    await send(response.start(max(1, len(body))))
    if len(body) >= 2:
        half = body[: len(body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
    # Returning with the body unfinished makes the server close the connection.
