"""The public namespace is a contract: tests outside this repository import it."""

import trio_resilience
import trio_resilience.limiters

CONTRACT = {
    # names DESIGN.md promises from the package root
    "ResilientClient",
    "create_resilient_client",
    "ClientConfig",
    "TimeoutConfig",
    "RetryConfig",
    "CircuitBreakerConfig",
    "BulkheadConfig",
    "LoggingConfig",
    "CircuitBreaker",
    "CircuitState",
    "CircuitBreakerOpenError",
    "TokenBucketRateLimiter",
    "SemaphoreRateLimiter",
    "PerKeyRateLimiter",
    "AsyncRateLimiter",
    "retry",
    "retry_context",
    "Backoff",
}


def test_contract_names_are_exported() -> None:
    """Every primitive name in the design contract is importable from the package."""
    missing = {name for name in CONTRACT if not hasattr(trio_resilience, name)}
    assert missing == set()


def test_all_is_exactly_the_intended_names() -> None:
    """__all__ lists exactly the public names, nothing private and nothing extra."""
    assert set(trio_resilience.__all__) == CONTRACT | {
        "Attempt",
        "CircuitBreakerStatistics",
        "CircuitBreakerTicket",
        "HedgingConfig",
        "LimitsConfig",
        "RetryBudget",
        "RetryBudgetStatistics",
        "RetryDetails",
        "SlidingWindow",
    }


def test_every_exported_name_exists() -> None:
    """Nothing in __all__ is a dangling name."""
    for module in (trio_resilience, trio_resilience.limiters):
        for name in module.__all__:
            assert getattr(module, name) is not None, name


def test_limiters_subpackage_exports() -> None:
    """The limiters subpackage exports the limiters and their statistics."""
    assert set(trio_resilience.limiters.__all__) == {
        "AsyncRateLimiter",
        "PerKeyRateLimiter",
        "SemaphoreRateLimiter",
        "SemaphoreRateLimiterStatistics",
        "TokenBucketRateLimiter",
        "TokenBucketRateLimiterStatistics",
        "acquire_on_behalf_of_within",
    }


def test_subpackage_contracts() -> None:
    """The names DESIGN.md promises from client, server, jobs and testing."""
    import trio_resilience.client.errors as errors
    import trio_resilience.jobs as jobs
    import trio_resilience.server as server
    import trio_resilience.testing as testing

    for name in (
        "APIError",
        "APIConnectionError",
        "APITimeoutError",
        "ServerError",
        "ServiceUnavailableError",
        "ServerTimeoutError",
        "APIStatusError",
        "AuthenticationError",
        "NotFoundError",
        "InvalidRequestError",
        "PoolTimeoutError",
        "RateLimitError",
    ):
        assert issubclass(getattr(errors, name), Exception), name
    assert set(server.__all__) == {
        "create_app",
        "create_app_from_env",
        "ServerSettings",
        "ResilienceTestApp",
        "configure_logging",
        "hypercorn_config",
        "serve_forever",
        "serve_workers",
    }
    assert set(testing.__all__) == {
        "FaultClient",
        "FaultRuleError",
        "MetricsSnapshot",
        "retries_without_waiting",
        "serve_in_background",
    }
    assert {
        "JobQueue",
        "JobContext",
        "JobStatus",
        "HandlerRegistry",
        "register_handler",
    } <= set(jobs.__all__)


def test_redis_contract() -> None:
    """The Redis twins DESIGN.md names, with its signatures, and the connection."""
    import inspect

    import trio_resilience.redis as redis

    assert set(redis.__all__) == {
        "RedisCircuitBreaker",
        "RedisCircuitBreakerTicket",
        "RedisConnection",
        "RedisTokenBucketRateLimiter",
        "RedisUnavailableError",
        "Script",
        "connection_for",
        "open_redis",
        "shared_connection",
    }
    limiter = inspect.signature(redis.RedisTokenBucketRateLimiter)
    assert list(limiter.parameters)[:4] == ["url", "key", "rate", "capacity"]
    breaker = inspect.signature(redis.RedisCircuitBreaker).parameters
    assert list(breaker)[:4] == [
        "url",
        "name",
        "failure_threshold",
        "recovery_timeout",
    ]
    assert breaker["failure_threshold"].default == 5
    assert breaker["recovery_timeout"].default == 30.0


def test_client_transport_contract() -> None:
    """DESIGN.md "Client additions": the pooled transport and how it is chosen."""
    import httpx

    import trio_resilience.client as client

    assert issubclass(client.PooledTransport, httpx.AsyncBaseTransport)
    assert client.ClientConfig().transport == "pooled"
    assert client.ClientConfig(transport="httpx").transport == "httpx"
    assert client.ResilientClient().transport == "pooled"
    assert client.ResilientClient(client.ClientConfig(transport="httpx")).transport == (
        "httpx"
    )


def test_metrics_contract() -> None:
    """DESIGN.md "Client additions": ClientMetrics(registry=None), metrics=..."""
    import inspect

    from trio_resilience import ResilientClient
    from trio_resilience.metrics import ClientMetrics

    assert list(inspect.signature(ClientMetrics).parameters) == ["registry"]
    assert "metrics" in inspect.signature(ResilientClient).parameters


def test_client_resilience_contract() -> None:
    """DESIGN.md "Client additions": the names and defaults of issue 14."""
    import inspect

    from trio_resilience import (
        CircuitBreaker,
        CircuitBreakerConfig,
        ClientConfig,
        HedgingConfig,
        ResilientClient,
        RetryConfig,
        SlidingWindow,
    )
    from trio_resilience.testing import retries_without_waiting

    retry = RetryConfig()
    assert (retry.budget_ratio, retry.budget_min_per_second) == (0.2, 10.0)
    assert RetryConfig(budget_ratio=None).budget() is None
    assert CircuitBreaker(window=SlidingWindow()).window == SlidingWindow()
    assert CircuitBreaker().window is None
    assert CircuitBreakerConfig().per_host is False
    hedging = HedgingConfig(0.05)
    assert (hedging.delay, hedging.max_extra) == (0.05, 1)
    assert hedging.methods == ("GET", "HEAD", "OPTIONS", "PUT", "DELETE")
    assert ClientConfig().hedging is None
    client = ResilientClient()
    assert callable(client.stream)
    assert {"retry", "hedge"} <= set(inspect.signature(client.request).parameters)
    assert dict(client.breakers) == {"*": client.breaker}
    with retries_without_waiting():
        pass
