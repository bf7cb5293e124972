"""The ASGI vocabulary the middleware layers share: types, scope keys, headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Keys this package puts in the ASGI scope for the layers below to read.
EXCHANGE_KEY = "trio_resilience.exchange"
REQUEST_ID_KEY = "trio_resilience.request_id"
SLOT_KEY = "trio_resilience.has_slot"

SCOPE_HEADER = b"x-fault-scope"
"""The request header naming a request's scope (fault rules, the journal)."""
CONTROL_PREFIXES = (
    "/health",
    "/faults",
    "/requests",
    "/fail/",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/redoc",
    "/scalar",
)
"""Paths of the control routes: never faulted, never held back by the concurrency
limit, so a saturated or failing server still answers health checks and lets a
test switch its faults off."""


async def send_json_payload(
    send: Send,
    status: int,
    payload: bytes,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """Send a whole response of ``status`` whose body is the JSON ``payload``."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def find_header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower case) in ``headers``, or None."""
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the request header ``name`` (lower case), or None."""
    return find_header(scope.get("headers", ()), name)
