"""The server's metrics, below HTTP: route labels, the counting of a finished
request, the job hooks of both queues' contract (virtual time) and the control
token's reach. Over HTTP: tests/integration/test_metrics_http.py."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from trio_resilience.jobs import (
    HandlerRegistry,
    Job,
    JobContext,
    JobQueue,
    JobQueueStatistics,
    JobStatus,
)
from trio_resilience.server import ServerSettings, create_app
from trio_resilience.server._guards import needs_control_token
from trio_resilience.server._metrics import (
    UNMATCHED,
    RouteLabels,
    ServerMetrics,
    route_template,
)
from trio_resilience.testing import MetricsSnapshot

REQUESTS = "resilience_server_requests_total"


@pytest.mark.parametrize(
    ("rule", "template"),
    [
        ("/msg", "/msg"),
        ("/api/v1/items/<int:record_id>", "/api/v1/items/{record_id}"),
        ("/anything/<anypath:rest>", "/anything/{rest}"),
        ("/status/<codes>", "/status/{codes}"),
        ("/a/<x>/b/<path:y>", "/a/{x}/b/{y}"),
    ],
)
def test_route_template_spells_parameters_as_openapi_does(
    rule: str, template: str
) -> None:
    assert route_template(rule) == template


@pytest.fixture(scope="module")
def labels() -> RouteLabels:
    return RouteLabels(create_app(ServerSettings()).url_map)


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        ("GET", "/msg", "/msg"),
        ("HEAD", "/msg", "/msg"),
        ("GET", "/api/v1/items/7", "/api/v1/items/{record_id}"),
        ("DELETE", "/api/v1/items/7", "/api/v1/items/{record_id}"),
        ("POST", "/api/v1/items", "/api/v1/items"),
        # A method the route does not take: still that route (a 405 there).
        ("POST", "/msg", "/msg"),
        ("other", "/msg", "/msg"),
        ("GET", "/anything/a/b/c", "/anything/{rest}"),
        ("GET", "/metrics", "/metrics"),
        ("GET", "/nope", UNMATCHED),
        ("GET", "/api/v1/items/abc", UNMATCHED),  # the int converter refuses it
        ("GET", "/msg/", UNMATCHED),
    ],
)
def test_a_path_is_labelled_with_the_template_of_its_route(
    labels: RouteLabels, method: str, path: str, label: str
) -> None:
    assert labels(method, path) == label
    assert labels(method, path) == label  # and the same from the cache


def test_the_label_cache_stays_bounded_under_10000_distinct_paths() -> None:
    labels = RouteLabels(create_app(ServerSettings()).url_map, max_cached=100)
    seen = {labels("GET", f"/unknown/{n}") for n in range(10_000)}
    seen |= {labels("GET", f"/api/v1/items/{n}") for n in range(10_000)}
    assert seen == {UNMATCHED, "/api/v1/items/{record_id}"}
    assert 0 < labels.cached <= 100
    assert labels("GET", "/msg") == "/msg"


def make_metrics() -> ServerMetrics:
    return ServerMetrics(lambda method, path: path)


def test_a_finished_request_is_counted_under_bounded_labels() -> None:
    """An unknown method counts as ``other``, a response never sent as status
    ``none``; sheds, timeouts, faults and replays have their own counters."""
    metrics = make_metrics()
    finished = metrics.request_finished
    finished("GET", "/msg", 200, "ok", 0.002, None, False)
    finished("GET", "/msg", 200, "ok", 0.004, None, True)
    finished("BREW", "/msg", 405, "ok", 0.001, None, False)
    finished("GET", "/msg", None, "reset", 0.001, "reset", False)
    finished("GET", "/msg", 503, "shed", 0.5, None, False)
    finished("GET", "/msg", 504, "timeout", 1.0, "hang", False)
    got = MetricsSnapshot.of(metrics.registry)
    assert got.value(REQUESTS, method="GET", route="/msg", status="200") == 2
    assert got.value(REQUESTS, method="other", route="/msg", status="405") == 1
    assert got.value(REQUESTS, status="none") == 1
    assert got.label_values(REQUESTS, "method") == {"GET", "other"}
    duration = "resilience_server_request_duration_seconds"
    assert got.value(f"{duration}_count", method="GET", route="/msg") == 5
    assert got.value(f"{duration}_sum", method="GET") == pytest.approx(1.507)
    assert got.value("resilience_server_shed_total", route="/msg") == 1
    assert got.value("resilience_server_timeouts_total", route="/msg") == 1
    injected = "resilience_server_injected_failures_total"
    assert got.value(injected, kind="reset") == got.value(injected, kind="hang") == 1
    assert got.value("resilience_server_idempotent_replays_total") == 1


def test_two_instances_count_apart() -> None:
    first, second = make_metrics(), make_metrics()
    first.request_finished("GET", "/msg", 200, "ok", 0.001, None, False)
    assert MetricsSnapshot.of(first.registry).value(REQUESTS) == 1
    assert MetricsSnapshot.of(second.registry).value(REQUESTS) == 0


def test_the_job_gauges_come_from_the_statistics_given() -> None:
    metrics = make_metrics()
    text, content_type = metrics.exposition(None)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    without = MetricsSnapshot.parse(text.decode())
    assert not without.matching("resilience_server_jobs_queued")
    stats = JobQueueStatistics(workers=2, pending=3, running=2, retained=9)
    got = MetricsSnapshot.parse(metrics.exposition(stats)[0].decode())
    assert got.value("resilience_server_jobs_queued") == 3
    assert got.value("resilience_server_jobs_running") == 2


def test_openmetrics_is_served_when_asked_for() -> None:
    """One document (a single ``# EOF``), job gauges included, that
    prometheus-client's OpenMetrics parser reads."""
    metrics = make_metrics()
    metrics.request_finished("GET", "/msg", 200, "ok", 0.001, None, False)
    stats = JobQueueStatistics(workers=1, pending=4, running=1, retained=0)
    accept = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
    body, content_type = metrics.exposition(stats, accept)
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert text.endswith("# EOF\n")
    assert text.count("# EOF") == 1
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in openmetrics_families(text)
        for sample in family.samples
    }
    key = (
        "resilience_server_requests_total",
        (("method", "GET"), ("route", "/msg"), ("status", "200")),
    )
    assert values[key] == 1
    assert values[("resilience_server_jobs_queued", ())] == 4


def job_registry() -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("sleep")
    async def sleep(payload: dict[str, Any], ctx: JobContext) -> None:
        await trio.sleep(payload["seconds"])

    @registry.handler("boom")
    async def boom(payload: dict[str, Any], ctx: JobContext) -> None:
        await trio.sleep(0.5)
        raise ValueError("bad input")

    return registry


async def test_every_end_of_a_job_is_counted_once_with_its_run_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One worker: a 2 s job completes, a failing one fails after 0.5 s, a waiting
    one is cancelled (no run time), a running one is cancelled after 1 s."""
    metrics = make_metrics()
    ended: list[tuple[str, JobStatus, float]] = []

    def on_finished(job: Job) -> None:
        ended.append((job.id, job.status, trio.current_time()))
        metrics.job_finished(job)

    async with JobQueue(job_registry(), workers=1, on_finished=on_finished) as queue:
        done = await queue.submit("sleep", {"seconds": 2})
        failed = await queue.submit("boom")
        waiting = await queue.submit("sleep", {"seconds": 9})
        queue.cancel(waiting)
        await queue.wait(failed)
        running = await queue.submit("sleep", {"seconds": 9})
        await trio.sleep(1)
        queue.cancel(running)
        await queue.wait(running)
    assert ended == [
        (waiting, JobStatus.CANCELLED, 0.0),
        (done, JobStatus.COMPLETED, 2.0),
        (failed, JobStatus.FAILED, 2.5),
        (running, JobStatus.CANCELLED, 3.5),
    ]
    got = MetricsSnapshot.of(metrics.registry)
    finished = "resilience_server_jobs_finished_total"
    assert got.value(finished, type="sleep", status="completed") == 1
    assert got.value(finished, type="sleep", status="cancelled") == 2
    assert got.value(finished, type="boom", status="failed") == 1
    duration = "resilience_server_job_duration_seconds"
    assert got.value(f"{duration}_count", type="sleep") == 2  # the waiting one: none
    assert got.value(f"{duration}_sum", type="sleep") == 3.0
    assert got.value(f"{duration}_sum", type="boom") == 0.5


async def test_jobs_cancelled_by_the_queue_shutting_down_are_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    statuses: list[JobStatus] = []
    async with JobQueue(
        job_registry(),
        workers=1,
        shutdown_grace=0.5,
        on_finished=lambda job: statuses.append(job.status),
    ) as queue:
        await queue.submit("sleep", {"seconds": 9})
        await queue.submit("sleep", {"seconds": 9})
        await trio.sleep(1)
    assert statuses == [JobStatus.CANCELLED, JobStatus.CANCELLED]


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/metrics", True),
        ("HEAD", "/metrics", True),
        ("OPTIONS", "/metrics", False),
        ("GET", "/msg", False),
        ("GET", "/faults", False),
        ("POST", "/faults", True),
        ("DELETE", "/metrics", True),
    ],
)
def test_reading_metrics_needs_the_control_token(
    method: str, path: str, needed: bool
) -> None:
    assert needs_control_token(method, path) is needed
