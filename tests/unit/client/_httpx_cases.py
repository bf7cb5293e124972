"""Every public httpx exception, what the client must raise for it, and how to make one.

Shared by test_errors.py (the mapping function) and test_client.py (the mapping as
the client applies it, through httpx.MockTransport).
"""

from __future__ import annotations

import httpx

from trio_resilience.client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientUsageError,
    ServiceUnavailableError,
    TooManyRedirectsError,
)

RETRIED, NOT_RETRIED = True, False

# httpx class -> (raised as, retried). Here a retried error is always one the circuit
# breaker counts (is_service_failure), and a not-retried one never is.
HTTPX_CASES: dict[type[Exception], tuple[type[APIError], bool]] = {
    httpx.HTTPError: (APIError, NOT_RETRIED),
    httpx.RequestError: (APIError, NOT_RETRIED),
    httpx.TransportError: (APIConnectionError, RETRIED),
    httpx.TimeoutException: (APITimeoutError, RETRIED),
    httpx.ConnectTimeout: (APITimeoutError, RETRIED),
    httpx.ReadTimeout: (APITimeoutError, RETRIED),
    httpx.WriteTimeout: (APITimeoutError, RETRIED),
    httpx.PoolTimeout: (APITimeoutError, RETRIED),
    httpx.NetworkError: (APIConnectionError, RETRIED),
    httpx.ConnectError: (APIConnectionError, RETRIED),
    httpx.ReadError: (APIConnectionError, RETRIED),
    httpx.WriteError: (APIConnectionError, RETRIED),
    httpx.CloseError: (APIConnectionError, RETRIED),
    httpx.ProxyError: (APIConnectionError, RETRIED),
    httpx.ProtocolError: (APIConnectionError, RETRIED),
    httpx.RemoteProtocolError: (APIConnectionError, RETRIED),
    httpx.DecodingError: (APIConnectionError, RETRIED),
    httpx.UnsupportedProtocol: (ClientUsageError, NOT_RETRIED),
    httpx.LocalProtocolError: (ClientUsageError, NOT_RETRIED),
    httpx.TooManyRedirects: (TooManyRedirectsError, NOT_RETRIED),
    httpx.HTTPStatusError: (ServiceUnavailableError, RETRIED),  # made with a 503
    httpx.InvalidURL: (ClientUsageError, NOT_RETRIED),
    httpx.CookieConflict: (ClientUsageError, NOT_RETRIED),
    httpx.StreamError: (ClientUsageError, NOT_RETRIED),
    httpx.StreamConsumed: (ClientUsageError, NOT_RETRIED),
    httpx.StreamClosed: (ClientUsageError, NOT_RETRIED),
    httpx.ResponseNotRead: (ClientUsageError, NOT_RETRIED),
    httpx.RequestNotRead: (ClientUsageError, NOT_RETRIED),
}


def make(cls: type[Exception]) -> Exception:
    """A fresh instance of the httpx exception ``cls``."""
    if cls is httpx.HTTPStatusError:
        request = httpx.Request("GET", "http://service.test/x")
        response = httpx.Response(503, request=request)
        return httpx.HTTPStatusError("503", request=request, response=response)
    if issubclass(cls, httpx.StreamError) and cls is not httpx.StreamError:
        return cls()  # type: ignore[call-arg]  # these four take no message
    return cls("boom")


def public_httpx_exceptions() -> set[type[BaseException]]:
    """Every exception class httpx exports at its top level."""
    found = (getattr(httpx, name) for name in dir(httpx) if not name.startswith("_"))
    return {o for o in found if isinstance(o, type) and issubclass(o, BaseException)}
