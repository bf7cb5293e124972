"""Redis: the connection the server's state backend and the client-side twins share.

``pip install 'trio-resilience[redis]'`` adds coredis, the Redis client used here
(anyio-based, so it runs natively under Trio).
"""

from ._connection import (
    RedisConnection,
    RedisUnavailableError,
    Script,
    open_redis,
    shared_connection,
)

__all__ = [
    "RedisConnection",
    "RedisUnavailableError",
    "Script",
    "open_redis",
    "shared_connection",
]
