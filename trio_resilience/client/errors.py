"""The errors a `ResilientClient` raises, and the one place outcomes are mapped to them.

::

    APIError                      every client error; .request_id, .attempts
    ├── APIConnectionError        retryable: the service may answer next time
    │   ├── APITimeoutError       a client-side timeout (connect, read, write, pool)
    │   ├── ServerError           5xx not listed below; .status_code, .response
    │   │   └── ServiceUnavailableError   502 / 503 / 504
    │   ├── ServerTimeoutError    408
    │   ├── RateLimitError        429; .retry_after
    │   └── CircuitOpenError      the circuit breaker refused the call (not retried)
    ├── APIStatusError            a non-retryable 4xx; .status_code, .response
    │   ├── AuthenticationError   401 / 403
    │   ├── NotFoundError         404
    │   └── InvalidRequestError   400 / 422
    ├── ClientUsageError          the request cannot be sent as given (bad URL, ...)
    ├── TooManyRedirectsError     more redirects than httpx follows
    └── PoolTimeoutError          no bulkhead slot within acquisition_timeout

``CircuitOpenError`` is also a `trio_resilience.CircuitBreakerOpenError`.

Every httpx exception is translated by `map_httpx_exceptions`, in one table, and
raised ``from`` the original; anything else (a `TypeError` for a bad keyword,
`trio.Cancelled`) passes through untouched.

::

    httpx exception                             raised as              retried  counted
    TimeoutException and its four subclasses    APITimeoutError        yes      yes
    NetworkError and its four subclasses,       APIConnectionError     yes      yes
      ProxyError, ProtocolError,
      RemoteProtocolError
    DecodingError (a body that does not         APIConnectionError     yes      yes
      decode as its Content-Encoding says)
    UnsupportedProtocol, LocalProtocolError,    ClientUsageError       no       no
      InvalidURL, CookieConflict, StreamError
      and its four subclasses
    TooManyRedirects                            TooManyRedirectsError  no       no
    HTTPStatusError                             the response's error, as a response is
    HTTPError, RequestError (the bare bases)    APIError               no       no

"counted" is `is_service_failure`: whether the circuit breaker records a failure.
"""

from __future__ import annotations

import email.utils
import time
from types import TracebackType
from typing import Final

import httpx

from .._breaker import CircuitBreakerOpenError, CircuitState


class APIError(Exception):
    """Base of every error the client raises."""

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        response: httpx.Response | None = None,
        retry_after: float | None = None,
    ) -> None:
        Exception.__init__(self, message)  # not super(): see CircuitOpenError
        self.message = message
        self.request_id = request_id
        self.response = response
        self.retry_after = retry_after
        """Seconds the server (or the breaker) asked the caller to wait, if any."""
        self.status_code: int | None = (
            None if response is None else response.status_code
        )
        self.attempts = 0
        """How many attempts the call made; set when the error leaves the client."""


class APIConnectionError(APIError):
    """The service could not be reached or did not answer properly; retryable."""


class APITimeoutError(APIConnectionError):
    """A client-side timeout: connecting, reading, writing, or waiting for the pool."""


class ServerError(APIConnectionError):
    """A 5xx response other than 502, 503 and 504."""


class ServiceUnavailableError(ServerError):
    """502, 503 or 504: the service or a gateway in front of it is unavailable."""


class ServerTimeoutError(APIConnectionError):
    """408: the server timed out waiting for the request."""


class RateLimitError(APIConnectionError):
    """429: too many requests; ``retry_after`` is the server's wish, if it said."""


# retry_after is a float here, while APIError allows None: the two bases differ.
class CircuitOpenError(APIConnectionError, CircuitBreakerOpenError):  # type: ignore[misc]
    """The circuit breaker refused the call; raised at once, never retried."""

    def __init__(
        self,
        *,
        state: CircuitState,
        retry_after: float,
        request_id: str | None = None,
    ) -> None:
        why = "" if state is CircuitState.OPEN else " (half-open, all probes busy)"
        APIError.__init__(
            self,
            f"Circuit breaker is OPEN{why}; not sent, retry in {retry_after:.3f}s",
            request_id=request_id,
            retry_after=retry_after,
        )
        self.state = state
        self.name = None


class APIStatusError(APIError):
    """A 4xx response that retrying would not change."""


class AuthenticationError(APIStatusError):
    """401 or 403."""


class NotFoundError(APIStatusError):
    """404."""


class InvalidRequestError(APIStatusError):
    """400 or 422."""


class ClientUsageError(APIError):
    """The request cannot be sent as given; retrying cannot help.

    A URL httpx cannot parse or a scheme it cannot send (`httpx.InvalidURL`,
    `httpx.UnsupportedProtocol`), a header h11 refuses (`httpx.LocalProtocolError`),
    a misused stream (`httpx.StreamError`) or a `httpx.CookieConflict`: a bug in the
    call, not a failure of the service, so the circuit breaker does not count it.
    """


class TooManyRedirectsError(APIError):
    """The service answered with more redirects than httpx follows (20 by default).

    Not retried, and not counted by the circuit breaker: the service did answer.
    """


class PoolTimeoutError(APIError):
    """No bulkhead slot came free within ``acquisition_timeout``."""


_STATUS_ERRORS: dict[int, type[APIError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    408: ServerTimeoutError,
    422: InvalidRequestError,
    429: RateLimitError,
    502: ServiceUnavailableError,
    503: ServiceUnavailableError,
    504: ServiceUnavailableError,
}


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def error_for_response(
    response: httpx.Response, request_id: str | None
) -> APIError | None:
    """The error a response stands for, or None for a success."""
    status = response.status_code
    if status < 400:
        return None
    cls = _STATUS_ERRORS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIStatusError
    message = f"{response.request.method} {response.request.url} -> {status}"
    detail = _detail(response)
    if detail:
        message = f"{message}: {detail}"
    retry_after = None
    if cls in (RateLimitError, ServiceUnavailableError):
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return cls(
        message, request_id=request_id, response=response, retry_after=retry_after
    )


HTTPX_EXCEPTIONS: Final[tuple[type[Exception], ...]] = (
    httpx.HTTPError,
    httpx.InvalidURL,
    httpx.CookieConflict,
    httpx.StreamError,
)
"""The roots of httpx's public exception tree: every httpx exception is one of them."""

# Looked up along the exception's MRO, so the most specific entry wins (a
# LocalProtocolError is a usage error although TransportError is retryable).
_EXCEPTION_ERRORS: Final[dict[type[Exception], type[APIError]]] = {
    httpx.TimeoutException: APITimeoutError,
    httpx.UnsupportedProtocol: ClientUsageError,
    httpx.LocalProtocolError: ClientUsageError,
    httpx.TransportError: APIConnectionError,
    httpx.DecodingError: APIConnectionError,
    httpx.TooManyRedirects: TooManyRedirectsError,
    httpx.HTTPError: APIError,
    httpx.InvalidURL: ClientUsageError,
    httpx.CookieConflict: ClientUsageError,
    httpx.StreamError: ClientUsageError,
}


def error_for_exception(exc: Exception, request_id: str | None) -> APIError:
    """The error an httpx exception stands for (see the table in this module).

    Raises `TypeError` for an exception that is not httpx's.
    """
    if isinstance(exc, httpx.HTTPStatusError):
        mapped = error_for_response(exc.response, request_id)
        if mapped is not None:
            return mapped
    for cls in type(exc).__mro__:
        error_cls = _EXCEPTION_ERRORS.get(cls)
        if error_cls is not None:
            break
    else:
        raise TypeError(f"not an httpx exception: {type(exc).__name__}")
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    response = exc.response if isinstance(exc, httpx.HTTPStatusError) else None
    return error_cls(message, request_id=request_id, response=response)


class _HttpxErrorMapper:
    """The context manager `map_httpx_exceptions` returns (a class, not a
    generator: it is entered twice per attempt)."""

    __slots__ = ("_request_id",)

    def __init__(self, request_id: str | None) -> None:
        self._request_id = request_id

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, HTTPX_EXCEPTIONS):
            raise error_for_exception(exc, self._request_id) from exc


def map_httpx_exceptions(request_id: str | None) -> _HttpxErrorMapper:
    """``with map_httpx_exceptions(request_id):`` raises an httpx error as ours.

    The one place the client translates httpx: any exception of httpx's leaves the
    block as `error_for_exception` says, ``from`` the original (httpx's own
    ``map_httpcore_exceptions`` is the model). Everything else passes through
    untouched: a `TypeError` for a bad keyword, `trio.Cancelled`, exception groups.
    """
    return _HttpxErrorMapper(request_id)


def is_retryable(exc: BaseException) -> bool:
    """Retried: connection problems, timeouts, 408, 429, 5xx; not an open circuit."""
    return isinstance(exc, APIConnectionError) and not isinstance(exc, CircuitOpenError)


def is_service_failure(exc: BaseException) -> bool:
    """Counted by the circuit breaker: the service failed, not the request (4xx)."""
    return isinstance(exc, APIConnectionError) and not isinstance(
        exc, RateLimitError | ServerTimeoutError | CircuitOpenError
    )


def is_usage_error(exc: BaseException) -> bool:
    """Ignored by the circuit breaker: the request never reached the service."""
    return isinstance(exc, ClientUsageError)


def retry_after_hint(exc: BaseException) -> float | None:
    """The delay a 429 or 503 asked for, if any."""
    return exc.retry_after if isinstance(exc, APIError) else None


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return ""
