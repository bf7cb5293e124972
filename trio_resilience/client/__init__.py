"""The resilient HTTP client: httpx on Trio with retries, breaker, bulkhead."""

from .client import ResilientClient as ResilientClient
from .client import create_resilient_client as create_resilient_client
from .config import BulkheadConfig as BulkheadConfig
from .config import CircuitBreakerConfig as CircuitBreakerConfig
from .config import ClientConfig as ClientConfig
from .config import LoggingConfig as LoggingConfig
from .config import RetryConfig as RetryConfig
from .config import TimeoutConfig as TimeoutConfig

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
