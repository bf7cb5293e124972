"""Rate and concurrency limiters sharing the `AsyncRateLimiter` protocol."""

from ._base import AsyncRateLimiter as AsyncRateLimiter
from ._capacity import acquire_on_behalf_of_within as acquire_on_behalf_of_within
from ._per_key import PerKeyRateLimiter as PerKeyRateLimiter
from ._semaphore import SemaphoreRateLimiter as SemaphoreRateLimiter
from ._semaphore import (
    SemaphoreRateLimiterStatistics as SemaphoreRateLimiterStatistics,
)
from ._token_bucket import TokenBucketRateLimiter as TokenBucketRateLimiter
from ._token_bucket import (
    TokenBucketRateLimiterStatistics as TokenBucketRateLimiterStatistics,
)

__all__ = [
    "AsyncRateLimiter",
    "PerKeyRateLimiter",
    "SemaphoreRateLimiter",
    "SemaphoreRateLimiterStatistics",
    "TokenBucketRateLimiter",
    "TokenBucketRateLimiterStatistics",
    "acquire_on_behalf_of_within",
]
