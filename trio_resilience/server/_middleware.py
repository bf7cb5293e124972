"""ASGI middleware, outermost first: errors -> request log -> timeout -> concurrency.

Each layer is a small ASGI app wrapping the next one and adds one concern, so the
order in `wrap` reads as the order a request goes through them. Non-HTTP scopes
(the lifespan protocol) pass straight through.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from ..limiters import acquire_on_behalf_of_within
from ._logging import get_logger

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID_HEADER = "x-request-id"
PROCESS_TIME_HEADER = "x-process-time"
# Keys this package puts in the ASGI scope for the layers below to read.
REQUEST_ID_KEY = "trio_resilience.request_id"
RESPONSE_KEY = "trio_resilience.response"
SLOT_KEY = "trio_resilience.has_slot"
# Paths never held back by the concurrency limit: a saturated server must still
# answer health checks and let a test switch its failure injection off.
UNLIMITED_PREFIXES = (
    "/health",
    "/fail/",
    "/openapi.json",
    "/docs",
    "/redocs",
    "/scalar",
)


async def send_json(
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a whole JSON response from a middleware layer."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


async def send_saturated(send: Send) -> None:
    """503: no concurrency slot came free in time."""
    await send_json(
        send, 503, {"detail": "Server is at capacity"}, [(b"retry-after", b"1")]
    )


class _ResponseTracker:
    """Wraps ``send`` to remember how far the response got.

    The outermost layer makes one per request and puts it in the scope, so every
    layer can see the response's progress without wrapping ``send`` again.
    """

    __slots__ = ("finished", "send", "started", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False
        self.finished = False
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            self.status = message["status"]
        elif message["type"] == "http.response.body" and not message.get(
            "more_body", False
        ):
            self.finished = True
        await self.send(message)


class ErrorHandlingMiddleware:
    """Turns any exception that escapes the layers below into a JSON 500, logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = get_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        tracker = scope[RESPONSE_KEY] = _ResponseTracker(send)
        try:
            await self.app(scope, receive, tracker)
        except Exception:
            self.log.exception(
                "unhandled error",
                path=scope.get("path"),
                request_id=scope.get(REQUEST_ID_KEY),
            )
            if not tracker.started:
                await send_json(send, 500, {"detail": "Internal Server Error"})
        return None


class RequestLoggingMiddleware:
    """One log line per request; echoes the request id and the processing time.

    The request id is the client's ``X-Request-ID`` or a new random one.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = get_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = trio.current_time()
        request_id = _header(scope, REQUEST_ID_HEADER) or secrets.token_hex(16)
        scope[REQUEST_ID_KEY] = request_id
        tracker: _ResponseTracker = scope[RESPONSE_KEY]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = trio.current_time() - start
                message["headers"] = [
                    *message.get("headers", []),
                    (REQUEST_ID_HEADER.encode(), request_id.encode("latin-1")),
                    (PROCESS_TIME_HEADER.encode(), f"{elapsed:.6f}".encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            # A response that never started is answered 500 by the layer above.
            self.log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=tracker.status if tracker.started else 500,
                duration_ms=round((trio.current_time() - start) * 1000, 3),
                request_id=request_id,
            )
        return None


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
        tracker: _ResponseTracker = scope[RESPONSE_KEY]
        if not deadline.cancelled_caught or tracker.finished:
            return None
        if tracker.started:
            # Too late to change the status: end the body where it stopped.
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif scope.get(SLOT_KEY) is False:
            await send_saturated(send)
        else:
            await send_json(send, 504, {"detail": "Request timed out"})
        return None


class ConcurrencyMiddleware:
    """At most ``limiter.total_tokens`` requests are handled at once.

    A request waits for a slot in arrival order, for at most ``queue_timeout``
    seconds (None: until the request's own deadline, enforced by the timeout layer
    above); one that gets no slot in time is answered 503 with ``Retry-After``.
    Control paths (`UNLIMITED_PREFIXES`) are never held back.
    """

    def __init__(
        self, app: ASGIApp, limiter: trio.CapacityLimiter, queue_timeout: float | None
    ) -> None:
        self.app = app
        self.limiter = limiter
        self.queue_timeout = math.inf if queue_timeout is None else queue_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNLIMITED_PREFIXES):
            return await self.app(scope, receive, send)
        borrower = object()
        scope[SLOT_KEY] = False
        if not await acquire_on_behalf_of_within(
            self.limiter, borrower, self.queue_timeout
        ):
            return await send_saturated(send)
        scope[SLOT_KEY] = True
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release_on_behalf_of(borrower)
        return None


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode()
    for key, value in scope.get("headers", ()):
        if key.lower() == wanted:
            decoded: str = value.decode("latin-1")
            return decoded
    return None


def wrap(
    app: ASGIApp,
    *,
    timeout: float,
    limiter: trio.CapacityLimiter,
    queue_timeout: float | None = None,
) -> ASGIApp:
    """The application wrapped in every layer, outermost first."""
    return ErrorHandlingMiddleware(
        RequestLoggingMiddleware(
            TimeoutMiddleware(
                ConcurrencyMiddleware(app, limiter, queue_timeout), timeout
            )
        )
    )
