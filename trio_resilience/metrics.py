"""Prometheus metrics for the resilient client (prometheus-client; no thread is
started and nothing is served: expose ``metrics.registry`` your own way).

::

    metrics = ClientMetrics()
    async with ResilientClient(config, metrics=metrics) as client:
        ...
    print(prometheus_client.generate_latest(metrics.registry).decode())

Every name starts ``resilient_client_``; labels are bounded (methods, error class
names, breaker origins up to ``max_hosts``):

- ``calls_total{method, outcome}``: calls by final outcome (``ok`` or the class
  of the error raised);
- ``attempts_total{method, outcome}``: attempts of the retry loop, likewise
  (hedged copies are ``hedges_total``);
- ``retries_total{method}``: retries decided on (each then sleeps its backoff);
- ``retries_refused_total``: retries the retry budget refused;
- ``call_duration_seconds{method}``: call latency, retries included (a histogram);
- ``breaker_state{origin}``: 0 closed, 1 half-open, 2 open (``*`` for the shared
  breaker);
- ``breaker_transitions_total{origin, from, to}``: every state change;
- ``bulkhead_waits_total``: attempts that found no bulkhead slot free at once;
- ``pool_timeouts_total``: attempts that got no slot within the acquisition timeout;
- ``hedges_total{method}``: hedged copies started.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ._breaker import CircuitState

M = TypeVar("M", Counter, Gauge, Histogram)

STATE_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
)  # fmt: skip


class Children(Generic[M]):
    """The children of ``metric`` by label values, kept: a call costs one
    dictionary lookup, where ``metric.labels(...)`` checks and locks each time
    (about 1 µs). For labels whose values are bounded (methods, outcomes,
    routes), as every label here is."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *values: str) -> Any:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


class ClientMetrics:
    """The metrics of one or more `ResilientClient`s, in ``registry`` (a new
    `prometheus_client.CollectorRegistry` by default, so two instances never
    clash; pass ``prometheus_client.REGISTRY`` to join the process's default).

    Attach with ``ResilientClient(config, metrics=metrics)``; one instance may
    serve several clients, whose counts then add up.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        name = "resilient_client"
        reg = self.registry
        self.calls = Counter(
            f"{name}_calls", "Calls by final outcome.", ["method", "outcome"],
            registry=reg,
        )  # fmt: skip
        self.attempts = Counter(
            f"{name}_attempts", "Attempts by outcome.", ["method", "outcome"],
            registry=reg,
        )  # fmt: skip
        self.retries = Counter(
            f"{name}_retries", "Retries started.", ["method"], registry=reg
        )
        self.retries_refused = Counter(
            f"{name}_retries_refused", "Retries the retry budget refused.",
            registry=reg,
        )  # fmt: skip
        self.call_duration = Histogram(
            f"{name}_call_duration_seconds", "Call latency, retries included.",
            ["method"], buckets=LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.breaker_state = Gauge(
            f"{name}_breaker_state", "0 closed, 1 half-open, 2 open.", ["origin"],
            registry=reg,
        )  # fmt: skip
        self.breaker_transitions = Counter(
            f"{name}_breaker_transitions", "Breaker state changes.",
            ["origin", "from", "to"], registry=reg,
        )  # fmt: skip
        self.bulkhead_waits = Counter(
            f"{name}_bulkhead_waits", "Attempts that found no bulkhead slot free.",
            registry=reg,
        )  # fmt: skip
        self.pool_timeouts = Counter(
            f"{name}_pool_timeouts", "Attempts that got no bulkhead slot in time.",
            registry=reg,
        )  # fmt: skip
        self.hedges = Counter(
            f"{name}_hedges", "Hedged copies started.", ["method"], registry=reg
        )

        self._attempts = Children(self.attempts)
        self._calls = Children(self.calls)
        self._call_duration = Children(self.call_duration)
        self.retried = Children(self.retries)
        """``retried(method)``: the child of ``retries`` for ``method``."""
        self.hedged = Children(self.hedges)
        """``hedged(method)``: the child of ``hedges`` for ``method``."""

    # The client calls these; each is a dictionary lookup or two and an add.

    def attempt(self, method: str, outcome: BaseException | None) -> None:
        self._attempts(method, _outcome(outcome)).inc()

    def call(self, method: str, outcome: BaseException | None, seconds: float) -> None:
        self._calls(method, _outcome(outcome)).inc()
        self._call_duration(method).observe(seconds)

    @contextlib.contextmanager
    def bulkhead_wait(self) -> Iterator[None]:
        """Entered when an attempt finds no bulkhead slot free at once."""
        self.bulkhead_waits.inc()
        yield

    def breaker_changed(
        self, origin: str, old: CircuitState, new: CircuitState
    ) -> None:
        self.breaker_transitions.labels(origin, old.value, new.value).inc()
        self.breaker_state.labels(origin).set(STATE_VALUES[new])

    def breaker_made(self, origin: str) -> None:
        self.breaker_state.labels(origin).set(STATE_VALUES[CircuitState.CLOSED])


def _outcome(exc: BaseException | None) -> str:
    return "ok" if exc is None else type(exc).__name__
