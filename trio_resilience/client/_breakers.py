"""A client's circuit breakers: one shared by every call, or one per origin."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

import httpx

from .._breaker import CircuitBreaker, CircuitState
from ..metrics import ClientMetrics
from ._config import CircuitBreakerConfig
from .errors import is_service_failure, is_usage_error

StateChangeHook = Callable[[CircuitState, CircuitState], object]

SHARED = "*"
"""The key of the one breaker when there is no breaker per origin."""


class Breakers:
    """``per_host``: a breaker per origin, made on its first call, at most
    ``max_hosts`` (a new origin drops the least recently used closed one with
    nothing against it, else the least recently used); otherwise one breaker."""

    __slots__ = ("_by_origin", "_metrics", "_on_change", "_settings", "_shared")

    def __init__(
        self,
        settings: CircuitBreakerConfig,
        on_state_change: StateChangeHook | None,
        metrics: ClientMetrics | None,
    ) -> None:
        self._settings = settings
        self._on_change = on_state_change
        self._metrics = metrics
        self._by_origin: dict[str, CircuitBreaker] = {}
        """Least recently used first."""
        self._shared = None if settings.per_host else self._new(SHARED)

    def for_url(self, url: httpx.URL) -> CircuitBreaker:
        """The breaker a request to ``url`` goes through."""
        if self._shared is not None:
            return self._shared
        origin = f"{url.scheme}://{url.netloc.decode('ascii')}"
        by_origin = self._by_origin
        breaker = by_origin.pop(origin, None)
        if breaker is None:
            if len(by_origin) >= self._settings.max_hosts:
                del by_origin[self._to_drop()]
            breaker = self._new(origin)
        by_origin[origin] = breaker  # the most recently used now
        return breaker

    def view(self) -> Mapping[str, CircuitBreaker]:
        """Origin -> breaker, read-only (``{"*": breaker}`` when shared)."""
        if self._shared is not None:
            return MappingProxyType({SHARED: self._shared})
        return MappingProxyType(self._by_origin)

    def _to_drop(self) -> str:
        for origin, breaker in self._by_origin.items():
            stats = breaker.statistics()
            if (
                stats.state is CircuitState.CLOSED
                and not stats.consecutive_failures
                and not stats.failure_rate
            ):
                return origin
        return next(iter(self._by_origin))

    def _new(self, origin: str) -> CircuitBreaker:
        settings = self._settings
        on_change = self._on_change
        metrics = self._metrics
        if metrics is not None:
            metrics.breaker_made(origin)
            user_hook = on_change

            def on_change(old: CircuitState, new: CircuitState) -> None:
                metrics.breaker_changed(origin, old, new)
                if user_hook is not None:
                    user_hook(old, new)

        return CircuitBreaker(
            failure_threshold=settings.failure_threshold,
            recovery_timeout=settings.recovery_timeout,
            half_open_max_calls=settings.half_open_max_calls,
            half_open_probe_timeout=settings.half_open_probe_timeout,
            window=settings.window,
            expected_exception=is_service_failure,
            ignored_exception=is_usage_error,
            on_state_change=on_change,
        )
