"""The resilient HTTP client: httpx on Trio with retries, breaker, bulkhead."""

from ._client import ResilientClient as ResilientClient
from ._client import create_resilient_client as create_resilient_client
from ._config import BulkheadConfig as BulkheadConfig
from ._config import CircuitBreakerConfig as CircuitBreakerConfig
from ._config import ClientConfig as ClientConfig
from ._config import LoggingConfig as LoggingConfig
from ._config import RetryConfig as RetryConfig
from ._config import TimeoutConfig as TimeoutConfig

__all__ = [
    "BulkheadConfig",
    "CircuitBreakerConfig",
    "ClientConfig",
    "LoggingConfig",
    "ResilientClient",
    "RetryConfig",
    "TimeoutConfig",
    "create_resilient_client",
]
