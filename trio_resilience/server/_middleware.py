"""ASGI middleware, outermost first: connection -> errors -> request log -> guards
-> timeout -> concurrency -> faults.

Each layer is a small ASGI app wrapping the next one and adds one concern, so the
order in `wrap` reads as the order a request goes through them. Non-HTTP scopes
(the lifespan protocol) pass straight through. The connection layer lives in
`_connections`, the guards in `_guards`; the others read the `Exchange` from the
scope. The fault layer lives in `_fault_layer`.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from typing import Any

import trio

from .._backend import BackendUnavailableError
from ..limiters import acquire_on_behalf_of_within
from ._asgi import (
    CONTROL_PREFIXES,
    EXCHANGE_KEY,
    REQUEST_ID_KEY,
    SCOPE_HEADER,
    SLOT_KEY,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    header,
    send_json_payload,
)
from ._connections import ConnectionMiddleware, Exchange
from ._fault_layer import FaultMiddleware, RuleCheck
from ._guards import GuardMiddleware, GuardPolicy
from ._journal import JournalEntry, RequestJournal
from ._logging import get_logger
from ._metrics import ServerMetrics
from ._responses import state_unavailable_body
from ._settings import ServerSettings

REQUEST_ID_HEADER = b"x-request-id"
PROCESS_TIME_HEADER = b"x-process-time"
CLIENT_CLOSED = 499
"""Logged for a request whose client hung up before any response (nginx's code)."""
NO_RESPONSE_OUTCOMES = frozenset({"reset", "closed"})
"""Faults that end a request with no response at all: its status is None."""


async def send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a whole JSON response from a middleware layer."""
    await send_json_payload(send, status, json.dumps(body).encode(), headers or ())


async def send_saturated(send: Send) -> None:
    """503: no concurrency slot came free in time."""
    await send_json(
        send, 503, {"detail": "Server is at capacity"}, [(b"retry-after", b"1")]
    )


class ErrorHandlingMiddleware:
    """Turns any exception that escapes the layers below into a JSON 500, logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = get_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        try:
            await self.app(scope, receive, send)
        except BackendUnavailableError as error:
            self.log.warning("state backend unavailable", error=str(error))
            if not scope[EXCHANGE_KEY].started and not scope[EXCHANGE_KEY].client_gone:
                await send_json(
                    send, 503, state_unavailable_body(error), [(b"retry-after", b"1")]
                )
        except Exception:
            self.log.exception(
                "unhandled error",
                path=scope.get("path"),
                request_id=scope.get(REQUEST_ID_KEY),
            )
            exchange: Exchange = scope[EXCHANGE_KEY]
            if not exchange.started and not exchange.client_gone:
                await send_json(send, 500, {"detail": "Internal Server Error"})
        return None


class RequestLoggingMiddleware:
    """One log line per request; echoes the request id and the processing time.

    The request id is the client's ``X-Request-ID`` or a new random one. Besides
    method, path, status, duration_ms and request_id, each line has an ``outcome``:

    - ``ok``: the route's response was sent in full, whatever its status (an
      injected failure's 500 included);
    - ``timeout``: ``request_timeout`` ran out (a 504, or a body cut short);
    - ``shed``: no concurrency slot came free in time (a 503);
    - ``refused``: a guard refused the request before its route (see `_guards`:
      ambiguous framing, a Host not allowed, a missing control token, a body
      that is not JSON);
    - ``client_closed``: the client hung up first; the status is then 499 (nginx's
      convention) unless a response had already started;
    - ``cancelled``: the server cut the request short at the end of its shutdown
      grace period;
    - ``error``: an unexpected exception ended the request (a 500);
    - ``reset``, ``closed``, ``truncated``: a fault rule dropped the connection
      (status None: no response) or cut the body short.

    A request a fault rule fired for also has ``fault``, the rule's id.

    What is logged is also recorded in the journal and counted in the metrics,
    when they are given.

    A request that ended without a response started is logged with status 500
    (Hypercorn answers it so if the connection is still there), or 499.
    """

    def __init__(
        self,
        app: ASGIApp,
        journal: RequestJournal | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.app = app
        self.log = get_logger()
        self.journal = journal
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = trio.current_time()
        given = header(scope, REQUEST_ID_HEADER)
        request_id = given.decode("latin-1") if given else secrets.token_hex(16)
        scope[REQUEST_ID_KEY] = request_id
        exchange: Exchange = scope[EXCHANGE_KEY]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = trio.current_time() - start
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER, request_id.encode("latin-1")),
                    (PROCESS_TIME_HEADER, f"{elapsed:.6f}".encode()),
                ]
            await send(message)

        def finish() -> None:
            status, outcome = _status_and_outcome(exchange)
            elapsed = trio.current_time() - start
            duration_ms = round(elapsed * 1000, 3)
            extra = {} if exchange.fault is None else {"fault": exchange.fault}
            self.log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                outcome=outcome,
                duration_ms=duration_ms,
                request_id=request_id,
                **extra,
            )
            if self.journal is not None:
                self._record(
                    scope, start, request_id, status, outcome, duration_ms, exchange
                )
            if self.metrics is not None:
                self.metrics.request_finished(
                    scope["method"],
                    scope["path"],
                    status,
                    outcome,
                    elapsed,
                    exchange.fault_kind,
                    exchange.replayed,
                )

        exchange.on_end(finish)
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # The layers below contain their own cancellations, so a cancelled
            # scope here is the server's: it stopped at the end of its grace period.
            if (
                exchange.outcome is None
                and not exchange.finished
                and trio.current_effective_deadline() == -math.inf
            ):
                exchange.outcome = "cancelled"
            exchange.end()  # if the response did not end it already
        return None

    def _record(
        self,
        scope: Scope,
        start: float,
        request_id: str,
        status: int | None,
        outcome: str,
        duration_ms: float,
        exchange: Exchange,
    ) -> None:
        assert self.journal is not None
        given_scope = header(scope, SCOPE_HEADER)
        self.journal.record(
            JournalEntry(
                at=self.journal.wall_time(start),
                method=scope["method"],
                path=scope["path"],
                query=scope.get("query_string", b"").decode("latin-1"),
                request_id=request_id,
                scope=None if given_scope is None else given_scope.decode("latin-1"),
                status=status,
                outcome=outcome,
                fault=exchange.fault,
                duration_ms=duration_ms,
            )
        )


def _status_and_outcome(exchange: Exchange) -> tuple[int | None, str]:
    if exchange.outcome in NO_RESPONSE_OUTCOMES:
        return None, exchange.outcome
    if exchange.client_gone:
        return (exchange.status if exchange.started else CLIENT_CLOSED), "client_closed"
    # A response that never started is answered 500 (by the layer above, or by
    # Hypercorn for a request cancelled before its response).
    status = exchange.status if exchange.started else 500
    if exchange.outcome is not None:
        return status, exchange.outcome
    return status, "ok" if exchange.finished else "error"


class TimeoutMiddleware:
    """Runs the rest of the request under ``trio.move_on_after(timeout)``.

    A request that runs out of time before its response started gets ``504``; one
    that was still waiting for a concurrency slot gets ``503`` with ``Retry-After``.
    """

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        with trio.move_on_after(self.timeout) as deadline:
            await self.app(scope, receive, send)
        exchange: Exchange = scope[EXCHANGE_KEY]
        if not deadline.cancelled_caught or exchange.finished:
            return None
        if exchange.client_gone:
            return None
        if exchange.started:
            # Too late to change the status. Ending the body here would pass a
            # short body off as complete (chunked), or break the framing the
            # response promised (Content-Length): leave it unfinished instead, so
            # the server closes the connection and the client sees it cut short.
            exchange.outcome = "timeout"
        elif scope.get(SLOT_KEY) is False:
            exchange.outcome = "shed"
            await send_saturated(send)
        else:
            exchange.outcome = "timeout"
            await send_json(send, 504, {"detail": "Request timed out"})
        return None


class ConcurrencyMiddleware:
    """At most ``limiter.total_tokens`` requests are handled at once.

    A request waits for a slot in arrival order, for at most ``queue_timeout``
    seconds (None: until the request's own deadline, enforced by the timeout layer
    above); one that gets no slot in time is answered 503 with ``Retry-After``.
    Control paths (`CONTROL_PREFIXES`) are never held back. With ``metrics``, the
    requests holding a slot and those waiting for one are counted in its gauges.
    """

    def __init__(
        self,
        app: ASGIApp,
        limiter: trio.CapacityLimiter,
        queue_timeout: float | None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.queue_timeout = math.inf if queue_timeout is None else queue_timeout
        self.metrics = metrics
        self._waiting = None if metrics is None else metrics.waiting.track_inprogress

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIXES):
            return await self.app(scope, receive, send)
        borrower = object()
        scope[SLOT_KEY] = False
        if not await acquire_on_behalf_of_within(
            self.limiter, borrower, self.queue_timeout, self._waiting
        ):
            exchange: Exchange = scope[EXCHANGE_KEY]
            exchange.outcome = "shed"
            return await send_saturated(send)
        scope[SLOT_KEY] = True
        metrics = self.metrics
        if metrics is not None:
            metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release_on_behalf_of(borrower)
            if metrics is not None:
                metrics.in_flight.dec()
        return None


def wrap(
    app: ASGIApp,
    *,
    timeout: float,
    limiter: trio.CapacityLimiter,
    queue_timeout: float | None = None,
    stopping: Callable[[], bool] | None = None,
    settings: ServerSettings | None = None,
    journal: RequestJournal | None = None,
    faults: RuleCheck | None = None,
    metrics: ServerMetrics | None = None,
) -> ASGIApp:
    """The application wrapped in every layer, outermost first.

    ``stopping()`` says whether the server is shutting down (see
    `ConnectionMiddleware`); by default it never is. The guards (`GuardMiddleware`)
    follow ``settings`` (its bind host, ``allowed_hosts`` and ``control_token``;
    default `ServerSettings()`); they sit inside the request log, so refusals are
    logged, and outside the timeout and concurrency layers, so a refused request
    never takes a slot. Every finished request is recorded in ``journal``, if given.
    The fault rules ``faults`` picks, if given, apply just inside the
    concurrency limit. Every request is counted in ``metrics``, if given.
    """
    policy = GuardPolicy.from_settings(
        ServerSettings() if settings is None else settings
    )
    layers = ErrorHandlingMiddleware(
        RequestLoggingMiddleware(
            GuardMiddleware(
                TimeoutMiddleware(
                    ConcurrencyMiddleware(
                        app if faults is None else FaultMiddleware(app, faults),
                        limiter,
                        queue_timeout,
                        metrics,
                    ),
                    timeout,
                ),
                policy,
            ),
            journal,
            metrics,
        )
    )
    return ConnectionMiddleware(layers, stopping)
