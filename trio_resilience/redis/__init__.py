"""Redis: the connection the server's state backend and the client-side twins share.

``pip install 'trio-resilience[redis]'`` adds coredis, the Redis client used here
(anyio-based, so it runs natively under Trio).
"""

from ._breaker import RedisCircuitBreaker, RedisCircuitBreakerTicket
from ._connection import (
    RedisConnection,
    RedisUnavailableError,
    Script,
    connection_for,
    open_redis,
    shared_connection,
)
from ._rate_limit import RedisTokenBucketRateLimiter

__all__ = [
    "RedisCircuitBreaker",
    "RedisCircuitBreakerTicket",
    "RedisConnection",
    "RedisTokenBucketRateLimiter",
    "RedisUnavailableError",
    "Script",
    "connection_for",
    "open_redis",
    "shared_connection",
]
