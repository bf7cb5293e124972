"""Resilience for HTTP services, built on Trio's structured concurrency.

The primitives (`retry`, `Backoff`, `CircuitBreaker`, the limiters) know nothing of
HTTP; the resilient client, the test server and the job queue build on them.
"""

from .backoff import Backoff as Backoff
from .breaker import CircuitBreaker as CircuitBreaker
from .breaker import CircuitBreakerOpenError as CircuitBreakerOpenError
from .breaker import CircuitBreakerStatistics as CircuitBreakerStatistics
from .breaker import CircuitState as CircuitState
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
    "CircuitBreaker",
    "CircuitBreakerOpenError",
    "CircuitBreakerStatistics",
    "CircuitState",
    "PerKeyRateLimiter",
    "RetryDetails",
    "SemaphoreRateLimiter",
    "TokenBucketRateLimiter",
    "retry",
    "retry_context",
]
