"""The resilient HTTP client: httpx on Trio with retries, breaker, bulkhead, and
its own connection pool (`PooledTransport`)."""

from ._client import ResilientClient as ResilientClient
from ._client import choose_transport as choose_transport
from ._client import create_resilient_client as create_resilient_client
from ._config import BulkheadConfig as BulkheadConfig
from ._config import CircuitBreakerConfig as CircuitBreakerConfig
from ._config import ClientConfig as ClientConfig
from ._config import HedgingConfig as HedgingConfig
from ._config import LimitsConfig as LimitsConfig
from ._config import LoggingConfig as LoggingConfig
from ._config import RetryConfig as RetryConfig
from ._config import TimeoutConfig as TimeoutConfig
from ._pool import PooledTransport as PooledTransport
from ._pool import PoolStats as PoolStats

__all__ = [
    "BulkheadConfig",
    "CircuitBreakerConfig",
    "ClientConfig",
    "HedgingConfig",
    "LimitsConfig",
    "LoggingConfig",
    "PoolStats",
    "PooledTransport",
    "ResilientClient",
    "RetryConfig",
    "TimeoutConfig",
    "choose_transport",
    "create_resilient_client",
]
