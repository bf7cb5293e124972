"""Mapping responses and httpx exceptions to the client's error hierarchy."""

from __future__ import annotations

import email.utils

import httpx
import pytest

from trio_resilience import CircuitBreakerOpenError, CircuitState
from trio_resilience.client.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    CircuitOpenError,
    InvalidRequestError,
    NotFoundError,
    PoolTimeoutError,
    RateLimitError,
    ServerError,
    ServerTimeoutError,
    ServiceUnavailableError,
    error_for_exception,
    error_for_response,
    is_retryable,
    is_service_failure,
    parse_retry_after,
)


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


def test_circuit_open_error_message_and_data() -> None:
    """An open circuit says so in the documented words and carries its data."""
    error = CircuitOpenError(state=CircuitState.OPEN, retry_after=2.5, request_id="r")
    assert "Circuit breaker is OPEN" in str(error)
    assert (error.state, error.retry_after, error.request_id) == (
        CircuitState.OPEN,
        2.5,
        "r",
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("t"), APITimeoutError),
        (httpx.ReadTimeout("t"), APITimeoutError),
        (httpx.PoolTimeout("t"), APITimeoutError),
        (httpx.ConnectError("refused"), APIConnectionError),
        (httpx.ReadError("reset"), APIConnectionError),
        (httpx.RemoteProtocolError("bad"), APIConnectionError),
        (httpx.UnsupportedProtocol("ftp"), APIError),
        (httpx.TooManyRedirects("loop"), APIError),
    ],
)
def test_exception_mapping(exc: httpx.HTTPError, expected: type[APIError]) -> None:
    """httpx exceptions map to one class each; never leak as themselves."""
    error = error_for_exception(exc, "rid")
    assert type(error) is expected
    assert error.request_id == "rid"


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
