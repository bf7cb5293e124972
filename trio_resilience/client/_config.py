"""`ResilientClient` configuration: frozen, validated, with the seeds' names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import httpx

from .._backoff import Backoff
from .._budget import RetryBudget
from .._log_threshold import log_level_number
from .._validation import check_int, check_number
from .._window import SlidingWindow


def _positive_number(name: str) -> Any:
    return lambda _self, _attr, value: check_number(name, value, above=0)


def _non_negative_number(name: str) -> Any:
    return lambda _self, _attr, value: check_number(name, value, at_least=0)


@attrs.frozen
class TimeoutConfig:
    """httpx's four timeouts, in seconds; each attempt gets them afresh."""

    connect: float = attrs.field(default=5.0, validator=_positive_number("connect"))
    read: float = attrs.field(default=30.0, validator=_positive_number("read"))
    write: float = attrs.field(default=30.0, validator=_positive_number("write"))
    pool: float = attrs.field(default=10.0, validator=_positive_number("pool"))


@attrs.frozen
class RetryConfig:
    """How often and how patiently a failed call is tried again.

    ``max_attempts`` counts every try, the first included. The wait before retry
    ``n`` is ``min(max_wait_seconds, min_wait_seconds * multiplier ** (n - 1))``,
    full-jittered when ``jitter`` is true (see `Backoff`); a ``Retry-After`` on 429 or
    503 replaces it, capped at ``max_wait_seconds``.

    A retry budget bounds the retries of all the client's calls together: over any
    ``budget_window_seconds``, at most ``budget_ratio`` of that window's first
    attempts plus ``budget_min_per_second * budget_window_seconds`` (see
    `RetryBudget`). With the defaults, 1,000 calls failing within 10 s make at most
    1,000 + 200 + 100 attempts; a retry the budget refuses raises the last error at
    once. ``budget_ratio=None`` turns the budget off.
    """

    max_attempts: int = attrs.field(
        default=3, validator=lambda _s, _a, v: check_int("max_attempts", v, minimum=1)
    )
    min_wait_seconds: float = attrs.field(
        default=1.0, validator=_non_negative_number("min_wait_seconds")
    )
    max_wait_seconds: float = attrs.field(
        default=60.0, validator=_non_negative_number("max_wait_seconds")
    )
    multiplier: float = attrs.field(
        default=2.0,
        validator=lambda _s, _a, v: check_number("multiplier", v, at_least=1),
    )
    jitter: bool = attrs.field(
        default=True, validator=attrs.validators.instance_of(bool)
    )
    budget_ratio: float | None = attrs.field(
        default=0.2,
        validator=lambda _s, _a, v: (
            v is None or check_number("budget_ratio", v, at_least=0)
        ),
    )
    budget_min_per_second: float = attrs.field(
        default=10.0, validator=_non_negative_number("budget_min_per_second")
    )
    budget_window_seconds: float = attrs.field(
        default=10.0, validator=_positive_number("budget_window_seconds")
    )

    def __attrs_post_init__(self) -> None:
        if self.max_wait_seconds < self.min_wait_seconds:
            raise ValueError("max_wait_seconds must be >= min_wait_seconds")

    def budget(
        self, on_refused: Callable[[], object] | None = None
    ) -> RetryBudget | None:
        """A new `RetryBudget` as these settings describe; None if it is off."""
        if self.budget_ratio is None:
            return None
        return RetryBudget(
            ratio=self.budget_ratio,
            min_per_second=self.budget_min_per_second,
            window=self.budget_window_seconds,
            on_refused=on_refused,
        )

    def backoff(self) -> Backoff:
        """The `Backoff` these settings describe."""
        return Backoff(
            initial=self.min_wait_seconds,
            maximum=self.max_wait_seconds,
            multiplier=self.multiplier,
            jitter=self.jitter,
        )


@attrs.frozen
class CircuitBreakerConfig:
    """When to stop calling a failing service, and when to probe it again.

    ``half_open_probe_timeout`` bounds how long a half-open probe holds its slot
    (None: ``recovery_timeout``); see `CircuitBreaker`.

    ``window=SlidingWindow(...)`` opens on failure and slow-call rates over recent
    calls instead of ``failure_threshold`` consecutive failures (see
    `SlidingWindow`).

    ``per_host=True`` gives each origin (scheme, host, port) its own breaker,
    made on its first call, so one failing host cannot cut the client off from
    the others; at most ``max_hosts`` are kept, the least recently used closed
    one (else the least recently used) dropped for a new origin.
    """

    failure_threshold: int = attrs.field(
        default=5,
        validator=lambda _s, _a, v: check_int("failure_threshold", v, minimum=1),
    )
    recovery_timeout: float = attrs.field(
        default=30.0, validator=_non_negative_number("recovery_timeout")
    )
    half_open_max_calls: int = attrs.field(
        default=1,
        validator=lambda _s, _a, v: check_int("half_open_max_calls", v, minimum=1),
    )
    half_open_probe_timeout: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            _positive_number("half_open_probe_timeout")
        ),
    )
    window: SlidingWindow | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            attrs.validators.instance_of(SlidingWindow)
        ),
    )
    per_host: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )
    max_hosts: int = attrs.field(
        default=128, validator=lambda _s, _a, v: check_int("max_hosts", v, minimum=1)
    )


@attrs.frozen
class LimitsConfig:
    """The connection pool's bounds (httpx's `httpx.Limits`, same defaults): at most
    ``max_connections`` open, at most ``max_keepalive_connections`` kept idle, none
    reused after ``keepalive_expiry`` idle seconds. A request waits for a connection
    at most ``TimeoutConfig.pool`` seconds."""

    max_connections: int = attrs.field(
        default=100,
        validator=lambda _s, _a, v: check_int("max_connections", v, minimum=1),
    )
    max_keepalive_connections: int = attrs.field(
        default=20,
        validator=lambda _s, _a, v: check_int(
            "max_keepalive_connections", v, minimum=0
        ),
    )
    keepalive_expiry: float = attrs.field(
        default=5.0, validator=_non_negative_number("keepalive_expiry")
    )

    def httpx_limits(self) -> httpx.Limits:
        return httpx.Limits(
            max_connections=self.max_connections,
            max_keepalive_connections=self.max_keepalive_connections,
            keepalive_expiry=self.keepalive_expiry,
        )


@attrs.frozen
class BulkheadConfig:
    """At most ``max_concurrency`` attempts in flight; a slot is waited for at most
    ``acquisition_timeout`` seconds before `PoolTimeoutError`."""

    max_concurrency: int = attrs.field(
        default=10,
        validator=lambda _s, _a, v: check_int("max_concurrency", v, minimum=1),
    )
    acquisition_timeout: float = attrs.field(
        default=5.0, validator=_non_negative_number("acquisition_timeout")
    )


IDEMPOTENT_METHODS = ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
"""The methods hedged by default; with TRACE, those the pool may resend."""


def _method_names(value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not all(
        isinstance(m, str) and m
        for m in value  # type: ignore[attr-defined]
    ):
        raise ValueError(f"methods must be a sequence of method names, not {value!r}")
    return tuple(m.upper() for m in value)  # type: ignore[attr-defined]


@attrs.frozen
class HedgingConfig:
    """Hedged requests: when an attempt has no answer after ``delay`` seconds, a
    second copy starts beside it (up to ``max_extra`` copies, ``delay`` apart),
    with the same request id; the first success wins and the others are
    cancelled. Only ``methods`` are hedged (the idempotent ones by default: a
    POST is hedged only if listed here, or if the call passes ``hedge=True``).
    Each hedge is paid from the retry budget and takes a bulkhead slot only if
    one is free at once; a failed attempt does not start one early. Off unless
    ``ClientConfig(hedging=HedgingConfig(delay=...))``.
    """

    delay: float = attrs.field(validator=_positive_number("delay"))
    max_extra: int = attrs.field(
        default=1, validator=lambda _s, _a, v: check_int("max_extra", v, minimum=1)
    )
    methods: tuple[str, ...] = attrs.field(
        default=IDEMPOTENT_METHODS, converter=_method_names
    )


def _check_level(_self: object, _attr: object, value: object) -> None:
    if not isinstance(value, str):
        raise ValueError(f"level must be a logging level name, not {value!r}")
    try:
        log_level_number(value)
    except ValueError:
        raise ValueError(f"level must be a logging level name, not {value!r}") from None


@attrs.frozen
class LoggingConfig:
    """Which of the client's per-attempt records reach the ``logger_name`` logger.

    Each attempt is one standard-library record at a level set by its outcome:

    * DEBUG: a success (a response below 400);
    * INFO: a failure that will be retried (the record names the next delay);
    * WARNING: the failure the call raises (no attempts left, not retryable, an
      open circuit, no bulkhead slot).

    ``level`` is a threshold, not the level records are written at: a record is
    emitted only if it is at least ``level`` *and* the logger is enabled for it (its
    own or its ancestors' level; the client never calls ``setLevel``). The default
    ``"INFO"`` logs retries and failures; ``"DEBUG"`` adds every success,
    ``"WARNING"`` keeps only failed calls, ``"ERROR"`` silences the client. A record
    that is not emitted is never formatted.
    """

    level: str = attrs.field(default="INFO", validator=_check_level)
    include_request_id: bool = attrs.field(
        default=True, validator=attrs.validators.instance_of(bool)
    )
    logger_name: str = attrs.field(
        default="resilient_client", validator=attrs.validators.instance_of(str)
    )

    @property
    def levelno(self) -> int:
        return log_level_number(self.level)


def _check_base_url(_self: object, _attr: object, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"base_url must be a str, not {type(value).__name__}")
    try:
        httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"base_url is not a valid URL: {exc}") from exc


TRANSPORTS = ("pooled", "httpx")


def _check_transport(_self: object, _attr: object, value: object) -> None:
    if value not in TRANSPORTS:
        raise ValueError(f"transport must be 'pooled' or 'httpx', not {value!r}")


def _check_optional_str(_self: object, attr: Any, value: object) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{attr.name} must be a non-empty str or None, not {value!r}")


@attrs.frozen
class ClientConfig:
    """Everything a `ResilientClient` needs; every part has sensible defaults.

    ``transport="pooled"`` (the default) sends HTTP/1.1 through `PooledTransport`;
    what it does not support makes the client use httpx's own transport instead:
    ``http2=True``, a ``proxy`` (given here or in the environment's ``HTTP_PROXY``,
    ``HTTPS_PROXY``, ``ALL_PROXY``), a Unix socket (``uds``). ``transport="httpx"``
    uses httpx's transport always. `ResilientClient.transport` tells which is used.
    """

    base_url: str = attrs.field(default="", validator=_check_base_url)
    timeout: TimeoutConfig = attrs.field(
        factory=TimeoutConfig, validator=attrs.validators.instance_of(TimeoutConfig)
    )
    retry: RetryConfig = attrs.field(
        factory=RetryConfig, validator=attrs.validators.instance_of(RetryConfig)
    )
    circuit_breaker: CircuitBreakerConfig = attrs.field(
        factory=CircuitBreakerConfig,
        validator=attrs.validators.instance_of(CircuitBreakerConfig),
    )
    bulkhead: BulkheadConfig = attrs.field(
        factory=BulkheadConfig, validator=attrs.validators.instance_of(BulkheadConfig)
    )
    logging: LoggingConfig = attrs.field(
        factory=LoggingConfig, validator=attrs.validators.instance_of(LoggingConfig)
    )
    follow_redirects: bool = attrs.field(
        default=True, validator=attrs.validators.instance_of(bool)
    )
    verify_ssl: bool = attrs.field(
        default=True, validator=attrs.validators.instance_of(bool)
    )
    user_agent: str = attrs.field(
        default="trio-resilience", validator=attrs.validators.instance_of(str)
    )
    request_id_header: str = attrs.field(
        default="X-Request-ID", validator=attrs.validators.min_len(1)
    )
    limits: LimitsConfig = attrs.field(
        factory=LimitsConfig, validator=attrs.validators.instance_of(LimitsConfig)
    )
    hedging: HedgingConfig | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(
            attrs.validators.instance_of(HedgingConfig)
        ),
    )
    transport: str = attrs.field(default="pooled", validator=_check_transport)
    http2: bool = attrs.field(
        default=False, validator=attrs.validators.instance_of(bool)
    )
    proxy: str | None = attrs.field(default=None, validator=_check_optional_str)
    uds: str | None = attrs.field(default=None, validator=_check_optional_str)
