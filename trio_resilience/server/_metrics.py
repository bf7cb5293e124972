"""The test server's Prometheus metrics, served by ``GET /metrics``.

Every name starts ``resilience_server_``. Labels are bounded whatever the traffic:
``route`` is the template of the route a path matches (``/api/v1/items/{record_id}``,
never ``/api/v1/items/7``), `UNMATCHED` for a path no route matches; ``method`` is
one of `METHODS` or ``other``; ``status`` is the status sent, ``none`` when a fault
dropped the connection without a response; job ``type`` is a registered job type.

- ``requests_total{method, route, status}`` and
  ``request_duration_seconds{method, route}`` (a histogram): every request, counted
  when it ends (refused, shed and faulted ones included);
- ``requests_in_flight``: requests holding a concurrency slot; ``requests_waiting``:
  requests waiting for one;
- ``shed_total{route}``: 503s for want of a slot; ``timeouts_total{route}``: requests
  ``request_timeout`` ended (a 504, or a body cut short);
- ``injected_failures_total{route, kind}``: requests a fault rule fired for, by the
  rule's action (``status``, ``delay``, ``reset``, ``close``, ``hang``, ``drip``,
  ``truncate``, ``commit_then_fail``);
- ``idempotent_replays_total{route}``: answers that replayed an earlier request's
  result (``Idempotent-Replayed: true``);
- ``jobs_finished_total{type, status}``: jobs that ended (completed, failed,
  cancelled), counted by the process that ended them;
  ``job_duration_seconds{type}``: how long the jobs that ran took (a histogram);
  ``jobs_queued`` and ``jobs_running``: the queue's depth and its running jobs at
  the time of the scrape (every process's, with a state URL).

With ``--workers N`` the supervisor points every worker at one directory with
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode): each worker
writes its numbers there, and whichever worker answers ``GET /metrics`` serves the
sum over every worker, those that died included (their gauges excepted).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator

import trio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, RequestRedirect

from ..jobs import Job, JobQueueStatistics
from ..metrics import LATENCY_BUCKETS, Children

PREFIX = "resilience_server"
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED = "unmatched"
"""The ``route`` label of a path no route matches."""
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
"""Methods that are their own ``method`` label; any other is ``other``."""
NO_RESPONSE = "none"
JOB_BUCKETS = (
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
)  # fmt: skip
_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def route_template(rule: str) -> str:
    """A werkzeug rule as the OpenAPI document spells it: ``/items/{record_id}``."""
    return _PARAMETER.sub(r"{\1}", rule)


class RouteLabels:
    """The ``route`` label of a request: the template of the route its method and
    path match in ``url_map`` (a path matching with another method gets that
    route's template), else `UNMATCHED`.

    Matching costs about 13 µs, so the last ``max_cached`` answers are kept (the
    cache starts over when full); a hot path pays one dictionary lookup.
    """

    def __init__(self, url_map: Map, max_cached: int = 4096) -> None:
        self._adapter = url_map.bind("localhost")
        self._cache: dict[tuple[str, str], str] = {}
        self._max_cached = max_cached

    @property
    def cached(self) -> int:
        """How many answers are kept now (at most ``max_cached``)."""
        return len(self._cache)

    def __call__(self, method: str, path: str) -> str:
        key = (method, path)
        label = self._cache.get(key)
        if label is None:
            label = self._match(method, path)
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
            self._cache[key] = label
        return label

    def _match(self, method: str, path: str) -> str:
        try:
            rule, _ = self._adapter.match(path, method, return_rule=True)
        except MethodNotAllowed as error:
            allowed = next(iter(error.valid_methods or ()), None)
            return UNMATCHED if allowed is None else self._match(allowed, path)
        except (NotFound, RequestRedirect):
            return UNMATCHED
        return route_template(rule.rule)


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, if it is on."""
    return os.environ.get(MULTIPROCESS_ENV) or None


class ServerMetrics:
    """One app's metrics, in ``registry`` (a new one by default, so apps side by
    side in one process count apart). ``routes`` gives a request's ``route``
    label (`RouteLabels`)."""

    def __init__(
        self,
        routes: Callable[[str, str], str],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = CollectorRegistry() if registry is None else registry
        self.routes = routes
        reg = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests", "Requests by route, method and status.",
            ["method", "route", "status"], registry=reg,
        )  # fmt: skip
        self.duration = Histogram(
            f"{PREFIX}_request_duration_seconds", "Request latency.",
            ["method", "route"], buckets=LATENCY_BUCKETS, registry=reg,
        )  # fmt: skip
        self.in_flight = Gauge(
            f"{PREFIX}_requests_in_flight", "Requests holding a concurrency slot.",
            registry=reg, multiprocess_mode="livesum",
        )  # fmt: skip
        self.waiting = Gauge(
            f"{PREFIX}_requests_waiting", "Requests waiting for a concurrency slot.",
            registry=reg, multiprocess_mode="livesum",
        )  # fmt: skip
        self.shed = Counter(
            f"{PREFIX}_shed", "503s: no concurrency slot came free in time.",
            ["route"], registry=reg,
        )  # fmt: skip
        self.timeouts = Counter(
            f"{PREFIX}_timeouts", "Requests request_timeout ended.", ["route"],
            registry=reg,
        )  # fmt: skip
        self.injected = Counter(
            f"{PREFIX}_injected_failures", "Requests a fault rule fired for.",
            ["route", "kind"], registry=reg,
        )  # fmt: skip
        self.replays = Counter(
            f"{PREFIX}_idempotent_replays", "Answers replaying an earlier result.",
            ["route"], registry=reg,
        )  # fmt: skip
        self.jobs_finished = Counter(
            f"{PREFIX}_jobs_finished", "Jobs that ended, by type and status.",
            ["type", "status"], registry=reg,
        )  # fmt: skip
        self.job_duration = Histogram(
            f"{PREFIX}_job_duration_seconds", "Run time of the jobs that ran.",
            ["type"], buckets=JOB_BUCKETS, registry=reg,
        )  # fmt: skip
        self._requests = Children(self.requests)
        self._duration = Children(self.duration)
        self._shed = Children(self.shed)
        self._timeouts = Children(self.timeouts)
        self._injected = Children(self.injected)
        self._replays = Children(self.replays)
        self._jobs_finished = Children(self.jobs_finished)
        self._job_duration = Children(self.job_duration)
        self._scraped: CollectorRegistry = self.registry
        if (shared := multiprocess_dir()) is not None:
            # Every process's numbers, from their files (this one's included).
            self._scraped = CollectorRegistry()
            MultiProcessCollector(self._scraped, shared)  # type: ignore[no-untyped-call]

    def request_finished(
        self,
        method: str,
        path: str,
        status: int | None,
        outcome: str,
        seconds: float,
        fault_kind: str | None,
        replayed: bool,
    ) -> None:
        """Count one request that ended (the request log calls this)."""
        if method not in METHODS:
            method = "other"
        route = self.routes(method, path)
        self._requests(
            method, route, NO_RESPONSE if status is None else str(status)
        ).inc()
        self._duration(method, route).observe(seconds)
        if outcome == "shed":
            self._shed(route).inc()
        elif outcome == "timeout":
            self._timeouts(route).inc()
        if fault_kind is not None:
            self._injected(route, fault_kind).inc()
        if replayed:
            self._replays(route).inc()

    def job_finished(self, job: Job) -> None:
        """Count a job that just ended (the job queue calls this)."""
        self._jobs_finished(job.type, job.status.value).inc()
        if job.started_at is not None:
            self._job_duration(job.type).observe(trio.current_time() - job.started_at)

    def exposition(
        self, jobs: JobQueueStatistics | None, accept: str = ""
    ) -> tuple[bytes, str]:
        """Everything, as the ``Accept`` header ``accept`` asks (prometheus-client's
        negotiation: OpenMetrics when asked for, else the Prometheus text format),
        and its content type. ``jobs`` is the job queue's state now (None while
        it is not running)."""
        scrape = CollectorRegistry(auto_describe=False)
        scrape.register(self._scraped)
        if jobs is not None:
            scrape.register(_Snapshot(jobs))
        encode, content_type = choose_encoder(accept)
        return encode(scrape), content_type


class _Snapshot(Collector):
    """The job queue's gauges, read when scraped (not kept per process: with a
    state URL the statistics are every process's already)."""

    def __init__(self, jobs: JobQueueStatistics) -> None:
        self.jobs = jobs

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            f"{PREFIX}_jobs_queued", "Jobs waiting to run.", value=self.jobs.pending
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_jobs_running", "Jobs running.", value=self.jobs.running
        )
