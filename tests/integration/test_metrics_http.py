"""GET /metrics over HTTP: exact counts after known traffic, read back with
prometheus-client's parser (`MetricsSnapshot`), from a real Hypercorn server on
127.0.0.1 in the test's nursery. Across worker processes:
test_workers_metrics.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httptools
import httpx
import pytest
import trio

from trio_resilience.server import ServerSettings
from trio_resilience.testing import FaultClient, MetricsSnapshot, serve_in_background

from .conftest import start_redis

P = "resilience_server"
REQUESTS = f"{P}_requests_total"
INJECTED = f"{P}_injected_failures_total"
QUIET = {"log_level": "ERROR", "enable_docs": False}


def settings(**overrides: object) -> ServerSettings:
    return ServerSettings(**{**QUIET, **overrides})


async def wait_until(
    faults: FaultClient, ready: Callable[[MetricsSnapshot], bool]
) -> MetricsSnapshot:
    """Scrape until ``ready`` holds (polled: the server's state, seen from outside)."""
    with trio.fail_after(10):
        while True:
            metrics = await faults.metrics()
            if ready(metrics):
                return metrics
            await trio.sleep(0.01)


async def test_injected_failures_are_counted_by_route_status_and_kind() -> None:
    """3 injected 503s out of 5 GET /msg; a reset, a close and a truncated body:
    each counted by its kind, with status ``none`` where no response was sent."""
    async with serve_in_background(settings()) as url:
        faults = FaultClient(url)
        await faults.add(method="GET", path="/msg", status=503, times=3)
        await faults.add(method="GET", path="/api/v1/items", reset=True, times=1)
        await faults.add(method="GET", path="/headers", close=True, times=1)
        await faults.add(method="GET", path="/bytes/*", truncate=True, times=1)
        async with httpx.AsyncClient(base_url=url) as client:
            statuses = [(await client.get("/msg")).status_code for _ in range(5)]
            assert statuses == [503, 503, 503, 200, 200]
            with pytest.raises(httpx.ReadError):
                await client.get("/api/v1/items")
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/headers")
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/bytes/100")
        got = await faults.metrics()
    msg = {"method": "GET", "route": "/msg"}
    assert got.value(REQUESTS, **msg, status="503") == 3
    assert got.value(REQUESTS, **msg, status="200") == 2
    assert got.value(f"{P}_request_duration_seconds_count", **msg) == 5
    assert got.value(INJECTED, route="/msg", kind="status") == 3
    assert got.value(INJECTED, route="/api/v1/items", kind="reset") == 1
    assert got.value(INJECTED, route="/headers", kind="close") == 1
    assert got.value(INJECTED, route="/bytes/{n}", kind="truncate") == 1
    assert got.value(INJECTED) == 6
    assert got.value(REQUESTS, route="/api/v1/items", status="none") == 1
    assert got.value(REQUESTS, route="/headers", status="none") == 1
    assert got.value(REQUESTS, route="/bytes/{n}", status="200") == 1
    assert got.value(REQUESTS, route="/faults", method="POST", status="201") == 4


async def test_sheds_timeouts_and_the_slot_gauges() -> None:
    """One slot: a hanging request holds it (in flight: 1) until request_timeout
    ends it with a 504; two more wait for it (waiting: 2) and are shed with 503
    after queue_timeout. GET /metrics answers throughout, never held back."""
    config = settings(max_concurrency=1, queue_timeout=0.3, request_timeout=1.5)
    async with serve_in_background(config) as url:
        faults = FaultClient(url)
        await faults.add(method="GET", path="/msg", headers={"x-hang": "1"}, hang=True)
        statuses: dict[str, list[int]] = {"hang": [], "shed": []}
        async with httpx.AsyncClient(base_url=url) as client:

            async def get(kind: str, **headers: str) -> None:
                statuses[kind].append(
                    (await client.get("/msg", headers=headers)).status_code
                )

            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: get("hang", **{"x-hang": "1"}))
                await wait_until(
                    faults, lambda m: m.value(f"{P}_requests_in_flight") == 1
                )
                nursery.start_soon(get, "shed")
                nursery.start_soon(get, "shed")
                waiting = await wait_until(
                    faults, lambda m: m.value(f"{P}_requests_waiting") == 2
                )
                assert waiting.value(f"{P}_requests_in_flight") == 1
        got = await faults.metrics()
    assert statuses == {"hang": [504], "shed": [503, 503]}
    assert got.value(f"{P}_shed_total", route="/msg") == 2
    assert got.value(f"{P}_timeouts_total", route="/msg") == 1
    assert got.value(INJECTED, route="/msg", kind="hang") == 1
    assert got.value(REQUESTS, route="/msg", status="503") == 2
    assert got.value(REQUESTS, route="/msg", status="504") == 1
    assert got.value(f"{P}_requests_in_flight") == 0
    assert got.value(f"{P}_requests_waiting") == 0


async def test_idempotent_replays_are_counted_per_route() -> None:
    """The same X-Request-ID twice on /msg, a create and a job submission."""
    async with serve_in_background(settings()) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(2):
                await client.get("/msg", headers={"X-Request-ID": "m-1"})
                await client.post(
                    "/api/v1/items",
                    json={"name": "pen", "price": 1.5},
                    headers={"X-Request-ID": "i-1"},
                )
                await client.post(
                    "/api/v1/jobs",
                    json={"type": "echo", "payload": {}},
                    headers={"X-Request-ID": "j-1"},
                )
            await client.get("/msg", headers={"X-Request-ID": "m-2"})
        got = await FaultClient(url).metrics()
    replays = f"{P}_idempotent_replays_total"
    assert got.value(replays, route="/msg") == 1
    assert got.value(replays, route="/api/v1/items") == 1
    assert got.value(replays, route="/api/v1/jobs") == 1
    assert got.value(REQUESTS, route="/api/v1/items", status="201") == 2


async def test_jobs_are_counted_by_status_with_the_queue_depth() -> None:
    """One job worker: a running job, one waiting behind it (queued: 1) that is
    cancelled, then the first completes."""
    async with serve_in_background(settings(job_workers=1)) as url:
        faults = FaultClient(url)
        async with httpx.AsyncClient(base_url=url) as client:

            async def submit(duration: float) -> str:
                response = await client.post(
                    "/api/v1/jobs",
                    json={"type": "long_running", "payload": {"duration": duration}},
                )
                assert response.status_code == 202, response.text
                job_id: str = response.json()["id"]
                return job_id

            first = await submit(0.5)
            second = await submit(5)
            busy = await wait_until(faults, lambda m: m.value(f"{P}_jobs_running") == 1)
            assert busy.value(f"{P}_jobs_queued") == 1
            assert (await client.delete(f"/api/v1/jobs/{second}")).status_code == 200
            await wait_until(
                faults,
                lambda m: m.value(f"{P}_jobs_finished_total", status="completed") == 1,
            )
            assert (await client.get(f"/api/v1/jobs/{first}")).json()["status"] == (
                "completed"
            )
        got = await faults.metrics()
    finished = f"{P}_jobs_finished_total"
    assert got.value(finished, type="long_running", status="cancelled") == 1
    assert got.value(finished, type="long_running", status="completed") == 1
    assert got.value(f"{P}_job_duration_seconds_count", type="long_running") == 1
    assert got.value(f"{P}_job_duration_seconds_sum") >= 0.5
    assert got.value(f"{P}_jobs_queued") == got.value(f"{P}_jobs_running") == 0


async def raw_gets(url: str, paths: list[str], connections: int = 8) -> Counter[int]:
    """GET every path over ``connections`` raw keep-alive connections, one request
    at a time on each (no client library in the way, so 10,000 requests take
    seconds); the statuses of the answers."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    statuses: Counter[int] = Counter()

    async def one_connection(mine: list[str]) -> None:
        done = False

        class Answer:
            def on_message_complete(self) -> None:
                nonlocal done
                done = True
                statuses[parser.get_status_code()] += 1

        parser = httptools.HttpResponseParser(Answer())
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            for path in mine:
                done = False
                request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"
                await stream.send_all(request.encode())
                while not done:
                    data = await stream.receive_some()
                    assert data, "the server closed the connection"
                    parser.feed_data(data)

    async with trio.open_nursery() as nursery:
        for k in range(connections):
            nursery.start_soon(one_connection, paths[k::connections])
    return statuses


async def test_labels_stay_bounded_under_10000_distinct_paths() -> None:
    """10,000 unknown paths and 1,000 item ids: two route labels in all."""
    async with serve_in_background(settings()) as url:
        paths = [f"/no/such/path/{n}" for n in range(10_000)]
        paths += [f"/api/v1/items/{n}" for n in range(1_000)]
        assert await raw_gets(url, paths) == {404: 11_000}
        got = await FaultClient(url).metrics()
    assert got.label_values(REQUESTS, "route") == {
        "unmatched",
        "/api/v1/items/{record_id}",
    }
    assert len(got.matching(REQUESTS)) == 2
    assert got.value(REQUESTS, route="unmatched", status="404") == 10_000
    assert got.value(REQUESTS, route="/api/v1/items/{record_id}") == 1_000


async def test_with_redis_gone_the_metrics_are_served_without_the_job_gauges(
    tmp_path: Path,
) -> None:
    """The job gauges come from Redis; while it is away the rest is still served
    (a scrape that failed would hide what the server did meanwhile)."""
    redis = start_redis(tmp_path)
    try:
        async with serve_in_background(settings(state_url=redis.url())) as url:
            faults = FaultClient(url)
            assert (await faults.metrics()).matching(f"{P}_jobs_queued") != []
            redis.process.terminate()
            redis.process.wait(10)
            with trio.fail_after(10):
                got = await faults.metrics()
    finally:
        if redis.process.poll() is None:
            redis.process.kill()
        redis.process.wait()
    assert got.matching(f"{P}_jobs_queued") == []
    assert got.value(REQUESTS, route="/metrics", status="200") == 1


async def test_metrics_are_never_faulted() -> None:
    """A rule for every path fails /msg; GET /metrics still answers."""
    async with serve_in_background(settings()) as url:
        faults = FaultClient(url)
        await faults.add(status=500)
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/msg")).status_code == 500
            response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"] == (
            "text/plain; version=0.0.4; charset=utf-8"
        )
        got = MetricsSnapshot.parse(response.text)
    assert got.value(INJECTED, route="/msg", kind="status") == 1
    assert not got.matching(INJECTED, route="/metrics")


async def test_a_scraper_asking_for_openmetrics_gets_it() -> None:
    async with serve_in_background(settings()) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            await client.get("/msg")
            accept = "application/openmetrics-text;version=1.0.0;q=0.9,*/*;q=0.1"
            response = await client.get("/metrics", headers={"Accept": accept})
    assert response.headers["content-type"].startswith(
        "application/openmetrics-text; version=1.0.0"
    )
    assert response.text.endswith("# EOF\n")
    assert (
        'resilience_server_requests_total{method="GET",route="/msg",status="200"} 1.0'
        in response.text
    )


async def test_with_a_control_token_reading_metrics_needs_it() -> None:
    async with serve_in_background(settings(control_token="s3cret")) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            for method in ("GET", "HEAD"):
                refused = await client.request(method, "/metrics")
                assert refused.status_code == 401, method
                assert refused.headers["www-authenticate"].startswith("Bearer")
            wrong = await client.get("/metrics", headers={"Authorization": "Bearer x"})
            assert wrong.status_code == 401
            preflight = await client.options("/metrics")
            assert preflight.status_code == 200
        got = await FaultClient(url, token="s3cret").metrics()
    assert got.value(REQUESTS, route="/metrics", status="401") == 3


async def test_with_metrics_off_there_is_no_route_and_nothing_counted() -> None:
    async with serve_in_background(settings(metrics_enabled=False)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/msg")).status_code == 200
            response = await client.get("/metrics")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_two_servers_in_one_process_count_apart() -> None:
    async with (
        serve_in_background(settings()) as first,
        serve_in_background(settings()) as second,
    ):
        async with httpx.AsyncClient() as client:
            for _ in range(3):
                await client.get(f"{first}/msg")
            await client.get(f"{second}/msg")
        counted = [
            (await FaultClient(url).metrics()).value(REQUESTS, route="/msg")
            for url in (first, second)
        ]
    assert counted == [3, 1]


def test_each_trio_run_serves_its_own_counts() -> None:
    """Two runs in one process: each server starts from zero (no count is left
    in a module or in prometheus-client's default registry)."""

    async def one_run() -> float:
        async with serve_in_background(settings()) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                await client.get("/msg")
            metrics = await FaultClient(url).metrics()
        return metrics.value(REQUESTS, route="/msg")

    assert [trio.run(one_run) for _ in range(2)] == [1.0, 1.0]
