"""Resilience for HTTP services, built on Trio's structured concurrency.

The primitives (`retry`, `Backoff`, `CircuitBreaker`, the limiters) know nothing of
HTTP; the resilient client (`ResilientClient`) and the test server build on them.
"""

from typing import TYPE_CHECKING

from ._backoff import Backoff as Backoff
from ._breaker import CircuitBreaker as CircuitBreaker
from ._breaker import CircuitBreakerOpenError as CircuitBreakerOpenError
from ._breaker import CircuitBreakerStatistics as CircuitBreakerStatistics
from ._breaker import CircuitBreakerTicket as CircuitBreakerTicket
from ._breaker import CircuitState as CircuitState
from ._budget import RetryBudget as RetryBudget
from ._budget import RetryBudgetStatistics as RetryBudgetStatistics
from ._retry import Attempt as Attempt
from ._retry import RetryDetails as RetryDetails
from ._retry import retry as retry
from ._retry import retry_context as retry_context
from ._version import __version__ as __version__
from ._window import SlidingWindow as SlidingWindow
from .limiters import AsyncRateLimiter as AsyncRateLimiter
from .limiters import PerKeyRateLimiter as PerKeyRateLimiter
from .limiters import SemaphoreRateLimiter as SemaphoreRateLimiter
from .limiters import TokenBucketRateLimiter as TokenBucketRateLimiter

if TYPE_CHECKING:
    from .client import BulkheadConfig as BulkheadConfig
    from .client import CircuitBreakerConfig as CircuitBreakerConfig
    from .client import ClientConfig as ClientConfig
    from .client import HedgingConfig as HedgingConfig
    from .client import LimitsConfig as LimitsConfig
    from .client import LoggingConfig as LoggingConfig
    from .client import ResilientClient as ResilientClient
    from .client import RetryConfig as RetryConfig
    from .client import TimeoutConfig as TimeoutConfig
    from .client import create_resilient_client as create_resilient_client

# The client's names are loaded on first use, so that importing the primitives, the
# server or the job queue (all below this package) never imports httpx.
_CLIENT_NAMES = frozenset(
    {
        "BulkheadConfig",
        "CircuitBreakerConfig",
        "ClientConfig",
        "HedgingConfig",
        "LimitsConfig",
        "LoggingConfig",
        "ResilientClient",
        "RetryConfig",
        "TimeoutConfig",
        "create_resilient_client",
    }
)


def __getattr__(name: str) -> object:
    if name in _CLIENT_NAMES:
        from . import client

        value: object = getattr(client, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_CLIENT_NAMES})


__all__ = [
    "AsyncRateLimiter",
    "Attempt",
    "Backoff",
    "BulkheadConfig",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerOpenError",
    "CircuitBreakerStatistics",
    "CircuitBreakerTicket",
    "CircuitState",
    "ClientConfig",
    "HedgingConfig",
    "LimitsConfig",
    "LoggingConfig",
    "PerKeyRateLimiter",
    "ResilientClient",
    "RetryBudget",
    "RetryBudgetStatistics",
    "RetryConfig",
    "RetryDetails",
    "SemaphoreRateLimiter",
    "SlidingWindow",
    "TimeoutConfig",
    "TokenBucketRateLimiter",
    "create_resilient_client",
    "retry",
    "retry_context",
]
