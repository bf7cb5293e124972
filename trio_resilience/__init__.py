"""Resilience for HTTP services, built on Trio's structured concurrency.

The primitives (`retry`, `Backoff`, `CircuitBreaker`, the limiters) know nothing of
HTTP; the resilient client (`ResilientClient`) and the test server build on them.
"""

from .backoff import Backoff as Backoff
from .breaker import CircuitBreaker as CircuitBreaker
from .breaker import CircuitBreakerOpenError as CircuitBreakerOpenError
from .breaker import CircuitBreakerStatistics as CircuitBreakerStatistics
from .breaker import CircuitState as CircuitState
from .client import BulkheadConfig as BulkheadConfig
from .client import CircuitBreakerConfig as CircuitBreakerConfig
from .client import ClientConfig as ClientConfig
from .client import LoggingConfig as LoggingConfig
from .client import ResilientClient as ResilientClient
from .client import RetryConfig as RetryConfig
from .client import TimeoutConfig as TimeoutConfig
from .client import create_resilient_client as create_resilient_client
from .limiters import AsyncRateLimiter as AsyncRateLimiter
from .limiters import PerKeyRateLimiter as PerKeyRateLimiter
from .limiters import SemaphoreRateLimiter as SemaphoreRateLimiter
from .limiters import TokenBucketRateLimiter as TokenBucketRateLimiter
from .retry import Attempt as Attempt
from .retry import RetryDetails as RetryDetails
from .retry import retry as retry
from .retry import retry_context as retry_context

__version__ = "0.1.0"

__all__ = [
    "AsyncRateLimiter",
    "Attempt",
    "Backoff",
    "BulkheadConfig",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitBreakerOpenError",
    "CircuitBreakerStatistics",
    "CircuitState",
    "ClientConfig",
    "LoggingConfig",
    "PerKeyRateLimiter",
    "ResilientClient",
    "RetryConfig",
    "RetryDetails",
    "SemaphoreRateLimiter",
    "TimeoutConfig",
    "TokenBucketRateLimiter",
    "create_resilient_client",
    "retry",
    "retry_context",
]
