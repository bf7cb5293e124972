"""Mapping responses and httpx exceptions to the client's error hierarchy."""

from __future__ import annotations

import email.utils

import httpx
import pytest
import trio
import trio.testing

from trio_resilience import CircuitBreakerOpenError, CircuitState
from trio_resilience.client.errors import (
    HTTPX_EXCEPTIONS,
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    CircuitOpenError,
    ClientUsageError,
    InvalidRequestError,
    NotFoundError,
    PoolTimeoutError,
    RateLimitError,
    ServerError,
    ServerTimeoutError,
    ServiceUnavailableError,
    TooManyRedirectsError,
    error_for_exception,
    error_for_response,
    is_retryable,
    is_service_failure,
    map_httpx_exceptions,
    parse_retry_after,
)

from ._httpx_cases import HTTPX_CASES, make, public_httpx_exceptions


def response(status: int, **kwargs: object) -> httpx.Response:
    return httpx.Response(
        status,
        request=httpx.Request("GET", "http://test/x"),
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (405, APIStatusError),
        (408, ServerTimeoutError),
        (409, APIStatusError),
        (422, InvalidRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (501, ServerError),
        (502, ServiceUnavailableError),
        (503, ServiceUnavailableError),
        (504, ServiceUnavailableError),
        (599, ServerError),
    ],
)
def test_status_mapping(status: int, expected: type[APIError]) -> None:
    """Each status maps to exactly the documented class, with its data attached."""
    error = error_for_response(response(status, json={"detail": "why"}), "rid")
    assert type(error) is expected
    assert error.status_code == status
    assert error.response is not None
    assert error.request_id == "rid"
    assert "why" in str(error)


@pytest.mark.parametrize("status", [200, 201, 204, 301, 304])
def test_success_and_redirects_are_not_errors(status: int) -> None:
    """Below 400 nothing is raised."""
    assert error_for_response(response(status), None) is None


def test_hierarchy() -> None:
    """Retryable errors are APIConnectionError; 4xx are APIStatusError."""
    assert issubclass(APITimeoutError, APIConnectionError)
    assert issubclass(ServiceUnavailableError, ServerError)
    assert issubclass(ServerError, APIConnectionError)
    assert issubclass(ServerTimeoutError, APIConnectionError)
    assert issubclass(RateLimitError, APIConnectionError)
    for cls in (AuthenticationError, NotFoundError, InvalidRequestError):
        assert issubclass(cls, APIStatusError)
    assert issubclass(PoolTimeoutError, APIError)
    assert not issubclass(PoolTimeoutError, APIConnectionError)
    assert issubclass(CircuitOpenError, APIConnectionError)
    assert issubclass(CircuitOpenError, CircuitBreakerOpenError)
    for other in (ClientUsageError, TooManyRedirectsError):
        assert issubclass(other, APIError)
        assert not issubclass(other, APIConnectionError | APIStatusError)


def test_circuit_open_error_message_and_data() -> None:
    """An open circuit says so in the documented words and carries its data."""
    error = CircuitOpenError(state=CircuitState.OPEN, retry_after=2.5, request_id="r")
    assert "Circuit breaker is OPEN" in str(error)
    assert (error.state, error.retry_after, error.request_id) == (
        CircuitState.OPEN,
        2.5,
        "r",
    )


def test_the_table_covers_every_public_httpx_exception() -> None:
    """Each exception class httpx exports has a row, and is under a mapped root."""
    assert set(HTTPX_CASES) == public_httpx_exceptions()
    assert all(issubclass(cls, HTTPX_EXCEPTIONS) for cls in HTTPX_CASES)


@pytest.mark.parametrize("cls", list(HTTPX_CASES), ids=lambda cls: cls.__name__)
def test_exception_mapping(cls: type[Exception]) -> None:
    """Each httpx exception maps to one class, retried and counted as the table says."""
    expected, retried = HTTPX_CASES[cls]
    exc = make(cls)
    error = error_for_exception(exc, "rid")
    assert type(error) is expected
    assert error.request_id == "rid"
    assert is_retryable(error) is retried
    assert is_service_failure(error) is retried
    if cls is not httpx.HTTPStatusError:  # that one reads as its response
        assert str(error) == f"{cls.__name__}: {exc}"


def test_status_error_carries_its_response() -> None:
    """An httpx.HTTPStatusError maps as its response does; a 3xx one is an APIError."""
    error = error_for_exception(make(httpx.HTTPStatusError), "rid")
    assert error.status_code == 503
    assert error.response is not None
    request = httpx.Request("GET", "http://test/x")
    redirect = httpx.Response(302, request=request)
    exc = httpx.HTTPStatusError("302", request=request, response=redirect)
    error = error_for_exception(exc, None)
    assert type(error) is APIError
    assert (error.status_code, error.response) == (302, redirect)


def test_error_for_exception_refuses_foreign_exceptions() -> None:
    """Only httpx's exceptions have a mapping; anything else is a TypeError."""
    with pytest.raises(TypeError, match=r"^not an httpx exception: ValueError$"):
        error_for_exception(ValueError("x"), None)


@pytest.mark.parametrize("cls", list(HTTPX_CASES), ids=lambda cls: cls.__name__)
def test_map_httpx_exceptions_raises_from_the_original(cls: type[Exception]) -> None:
    """The context manager raises the mapped error with the httpx one as its cause."""
    exc = make(cls)
    with pytest.raises(APIError) as info, map_httpx_exceptions("rid"):
        raise exc
    assert type(info.value) is HTTPX_CASES[cls][0]
    assert info.value.__cause__ is exc
    assert info.value.request_id == "rid"


@pytest.mark.parametrize(
    "exc",
    [
        TypeError("bad keyword"),
        ValueError("x"),
        RuntimeError("x"),
        KeyboardInterrupt(),
        ExceptionGroup("g", [httpx.ConnectError("x")]),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_map_httpx_exceptions_lets_other_exceptions_through(
    exc: BaseException,
) -> None:
    """Exceptions that are not httpx's leave the block unchanged."""
    with pytest.raises(type(exc)) as info, map_httpx_exceptions("rid"):
        raise exc
    assert info.value is exc


async def test_map_httpx_exceptions_lets_cancellation_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """trio.Cancelled passes through the mapping to its cancel scope."""
    with trio.CancelScope() as scope:
        scope.cancel()
        with map_httpx_exceptions("rid"):
            await trio.sleep(1)
    assert scope.cancelled_caught


def test_retryable_and_breaker_failures() -> None:
    """What is retried and what the breaker counts."""
    server = ServerError("x")
    rate = RateLimitError("x")
    timeout = ServerTimeoutError("x")
    circuit = CircuitOpenError(state=CircuitState.OPEN, retry_after=1)
    assert is_retryable(server)
    assert is_service_failure(server)
    assert is_retryable(rate)
    assert not is_service_failure(rate)
    assert is_retryable(timeout)
    assert not is_service_failure(timeout)
    assert not is_retryable(circuit)
    assert not is_service_failure(circuit)
    assert not is_retryable(NotFoundError("x"))
    assert not is_service_failure(NotFoundError("x"))
    assert is_service_failure(APITimeoutError("x"))
    assert not is_retryable(PoolTimeoutError("x"))
    for usage in (ClientUsageError("x"), TooManyRedirectsError("x")):
        assert not is_retryable(usage)
        assert not is_service_failure(usage)


def test_parse_retry_after() -> None:
    """Retry-After is delta-seconds or an HTTP date; garbage is ignored."""
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == 30.0
    assert parse_retry_after(date, now=2_000_000) == 0.0


def test_rate_limit_carries_retry_after() -> None:
    """429 and 503 errors carry the Retry-After delay."""
    error = error_for_response(response(429, headers={"Retry-After": "7"}), None)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7.0
    error = error_for_response(response(503, headers={"Retry-After": "2"}), None)
    assert isinstance(error, ServiceUnavailableError)
    assert error.retry_after == 2.0
