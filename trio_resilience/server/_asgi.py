"""The ASGI vocabulary the middleware layers share: types, scope keys, headers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
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


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the request header ``name`` (lower case), or None."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            found: bytes = value
            return found
    return None
