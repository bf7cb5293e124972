"""``GET /metrics`` under ``serve --workers 4 --state-url redis://...``: whichever
worker answers, it serves the whole server's numbers (prometheus-client's
multiprocess mode, in a directory the supervisor makes and removes), a killed
worker's counts stay and its gauges go, and ``SERVER_METRICS_ENABLED=false``
turns all of it off.

The real command line runs in a subprocess against the session's redis-server;
every request goes on a fresh connection, so the kernel spreads them (and the
scrapes) over the workers. Which worker counted what is read from the workers'
own files in the metrics directory (``counter_<pid>.db``, ``gauge_livesum_<pid>.db``).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import trio
from prometheus_client.mmap_dict import MmapedDict

from trio_resilience.testing import MetricsSnapshot

from .conftest import CLIServer, cli_server
from .test_workers_redis import (
    WORKERS,
    fresh_get,
    listening,
    wait_for_listening_workers,
    worker_pids,
    workers_server,
)

REQUESTS = "resilience_server_requests_total"
DURATION_COUNT = "resilience_server_request_duration_seconds_count"
IN_FLIGHT = "resilience_server_requests_in_flight"
JOBS_FINISHED = "resilience_server_jobs_finished_total"
JOB_DURATION_COUNT = "resilience_server_job_duration_seconds_count"
JOBS_QUEUED = "resilience_server_jobs_queued"
JOBS_RUNNING = "resilience_server_jobs_running"
SCRAPES = 8


async def scrape(base_url: str) -> MetricsSnapshot:
    """GET /metrics on a fresh connection (so any worker may answer)."""
    answer = await fresh_get(base_url, "/metrics")
    assert answer.status_code == 200, answer.text
    return MetricsSnapshot.parse(answer.text)


def metrics_directory(server: CLIServer) -> Path:
    """The directory named by the supervisor's one "workers share metrics" line."""
    [line] = [
        e for e in server.json_lines() if e.get("event") == "workers share metrics"
    ]
    return Path(line["directory"])


def per_worker(
    directory: Path, kind: str, sample: str, **labels: str
) -> dict[int, float]:
    """``sample`` (labels including ``labels``) as each worker wrote it in its own
    ``<kind>_<pid>.db`` file: pid -> value, for the workers that have it."""
    found: dict[int, float] = {}
    for path in directory.glob(f"{kind}_*.db"):
        pid = int(path.stem.removeprefix(f"{kind}_"))
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, sample_labels, _ = json.loads(key)
            if name == sample and labels.items() <= sample_labels.items():
                found[pid] = found.get(pid, 0.0) + value
    return found


async def get_msg(base_url: str, count: int) -> None:
    for _ in range(count):
        assert (await fresh_get(base_url, "/msg")).status_code == 200


async def kill_and_wait_for_replacement(server: CLIServer, pid: int) -> None:
    """SIGKILL worker ``pid``; return once the supervisor reaped it (which marks it
    dead in the metrics directory) and its replacement listens."""
    started, listened = len(worker_pids(server)), listening(server)
    os.kill(pid, signal.SIGKILL)
    await wait_for_listening_workers(server, listened + 1)
    died = [
        e for e in server.json_lines() if e.get("event") == "worker died; replacing it"
    ]
    assert [e["pid"] for e in died] == [pid]
    assert len(worker_pids(server)) == started + 1


async def test_every_worker_scrapes_the_requests_of_all(redis_url: str) -> None:
    """40 GET /msg spread over the workers (at least 2 counted some, as their own
    files show), then 8 scrapes on fresh connections: each says 40, whichever
    worker answers (no waiting: a request is counted before its client has the
    response)."""
    async with workers_server(redis_url) as server:
        await get_msg(server.base_url, 40)
        directory = metrics_directory(server)
        served = per_worker(directory, "counter", REQUESTS, route="/msg", status="200")
        assert set(served) <= set(worker_pids(server))
        assert len(served) >= 2
        assert sum(served.values()) == 40
        for _ in range(SCRAPES):
            metrics = await scrape(server.base_url)
            assert (
                metrics.value(REQUESTS, method="GET", route="/msg", status="200") == 40
            )
            assert metrics.value(REQUESTS, route="/msg") == 40
            assert metrics.value(DURATION_COUNT, method="GET", route="/msg") == 40
            assert metrics.label_values(REQUESTS, "route") <= {"/msg", "/metrics"}


async def test_counts_survive_a_killed_worker(redis_url: str) -> None:
    """20 GET /msg, SIGKILL a worker that counted some of them, 5 more once its
    replacement listens: every scrape says 25, none in flight, and the dead
    worker's counter file is still there while its live gauges' file is gone."""
    async with workers_server(redis_url) as server:
        await get_msg(server.base_url, 20)
        directory = metrics_directory(server)
        served = per_worker(directory, "counter", REQUESTS, route="/msg", status="200")
        victim = max(served, key=lambda pid: served[pid])
        assert victim in worker_pids(server)
        assert (directory / f"gauge_livesum_{victim}.db").exists()
        await kill_and_wait_for_replacement(server, victim)
        assert not (directory / f"gauge_livesum_{victim}.db").exists()
        await get_msg(server.base_url, 5)
        after = per_worker(directory, "counter", REQUESTS, route="/msg", status="200")
        assert after[victim] == served[victim]  # the dead worker's file stays
        assert sum(after.values()) == 25
        for _ in range(SCRAPES):
            metrics = await scrape(server.base_url)
            assert (
                metrics.value(REQUESTS, method="GET", route="/msg", status="200") == 25
            )
            assert metrics.value(DURATION_COUNT, method="GET", route="/msg") == 25
            assert metrics.matching(IN_FLIGHT) != []
            assert metrics.value(IN_FLIGHT) == 0


async def test_a_worker_killed_mid_request_leaves_nothing_in_flight(
    redis_url: str,
) -> None:
    """A request held in flight (a 20 s /msg delay), its worker SIGKILLed: the
    scrapes said 1 in flight before, and 0 once the supervisor marked the worker
    dead (its livesum gauge no longer counts); the cut request is not counted."""
    async with workers_server(redis_url) as server:
        directory = metrics_directory(server)
        outcome: list[BaseException | int] = []

        async def held() -> None:
            try:
                answer = await fresh_get(server.base_url, "/msg?delay=20000")
                outcome.append(answer.status_code)
            except httpx.TransportError as error:
                outcome.append(error)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(held)
            with trio.fail_after(10):
                while True:  # polled: the request reaches another process
                    if (await scrape(server.base_url)).value(IN_FLIGHT) == 1:
                        break
                    await trio.sleep(0.05)
            holding = per_worker(directory, "gauge_livesum", IN_FLIGHT)
            [victim] = [pid for pid, value in holding.items() if value == 1]
            assert victim in worker_pids(server)
            await kill_and_wait_for_replacement(server, victim)
        [cut] = outcome
        assert isinstance(cut, httpx.RemoteProtocolError), cut
        for _ in range(SCRAPES):
            metrics = await scrape(server.base_url)
            assert metrics.value(IN_FLIGHT) == 0
            assert metrics.value(REQUESTS, route="/msg") == 0


async def test_jobs_finished_on_any_worker_are_counted_once(redis_url: str) -> None:
    """6 echo jobs submitted on fresh connections and run by whichever workers:
    once all are completed, every scrape says 6 completed, 6 durations, none
    queued or running."""
    async with workers_server(redis_url) as server:
        ids: list[str] = []
        for number in range(6):
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                submitted = await client.post(
                    "/api/v1/jobs", json={"type": "echo", "payload": {"n": number}}
                )
            assert submitted.status_code == 202, submitted.text
            ids.append(submitted.json()["id"])
        assert len(set(ids)) == 6
        with trio.fail_after(30):
            for job_id in ids:
                while True:  # polled: the jobs run in other processes
                    job = await fresh_get(server.base_url, f"/api/v1/jobs/{job_id}")
                    assert job.status_code == 200, job.text
                    if job.json()["status"] == "completed":
                        break
                    await trio.sleep(0.05)
        # A job is recorded completed in Redis just before the worker that ran
        # it counts it, so a scrape may precede the count by a moment: wait for
        # the sixth, then every scrape must say exactly 6.
        with trio.fail_after(10):
            while True:  # polled: the count is made in another process
                metrics = await scrape(server.base_url)
                if metrics.value(JOBS_FINISHED) >= 6:
                    break
                await trio.sleep(0.05)
        directory = metrics_directory(server)
        ran = per_worker(directory, "counter", JOBS_FINISHED, type="echo")
        assert set(ran) <= set(worker_pids(server))
        for _ in range(SCRAPES):
            metrics = await scrape(server.base_url)
            assert metrics.value(JOBS_FINISHED) == 6
            assert metrics.value(JOBS_FINISHED, type="echo", status="completed") == 6
            assert metrics.label_values(JOBS_FINISHED, "status") == {"completed"}
            assert metrics.value(JOB_DURATION_COUNT) == 6
            assert metrics.value(JOB_DURATION_COUNT, type="echo") == 6
            assert metrics.matching(JOBS_QUEUED) != []
            assert metrics.value(JOBS_QUEUED) == 0
            assert metrics.matching(JOBS_RUNNING) != []
            assert metrics.value(JOBS_RUNNING) == 0


async def test_the_metrics_directory_lives_as_long_as_the_server(
    redis_url: str,
) -> None:
    """The supervisor logs its metrics directory: a new temporary one, holding a
    livesum-gauge file of every worker while serving, removed at the end."""
    async with workers_server(redis_url) as server:
        directory = metrics_directory(server)
        assert directory.name.startswith("trio-resilience-metrics-")
        assert directory.is_dir()
        files = {path.name for path in directory.glob("*.db")}
        pids = worker_pids(server)
        assert len(pids) == WORKERS
        assert {f"gauge_livesum_{pid}.db" for pid in pids} <= files
        assert all(name.endswith(".db") for name in os.listdir(directory))
    assert server.process.returncode == 0
    assert not directory.exists()


async def test_metrics_off_with_workers(redis_url: str) -> None:
    """SERVER_METRICS_ENABLED=false: no worker has GET /metrics (404), and the
    supervisor makes no metrics directory."""
    async with (
        cli_server(
            "--workers",
            str(WORKERS),
            "--state-url",
            redis_url,
            env={"SERVER_METRICS_ENABLED": "false"},
        ) as server,
    ):
        await wait_for_listening_workers(server, WORKERS)
        for _ in range(SCRAPES):
            assert (await fresh_get(server.base_url, "/metrics")).status_code == 404
        assert (await fresh_get(server.base_url, "/msg")).status_code == 200
        events = [e.get("event") for e in server.json_lines()]
        assert events.count("worker started") == WORKERS
        assert "workers share metrics" not in events


async def test_a_request_is_counted_before_its_client_has_the_response(
    redis_url: str,
) -> None:
    """``Exchange.end`` promises that a request is recorded (log, journal,
    metrics) before its client can see the response end. Checked 100 times: right
    after each GET /msg, the workers' counter files (read directly, no scrape)
    must hold every request answered so far."""
    async with workers_server(redis_url) as server:
        directory = metrics_directory(server)
        behind: list[tuple[int, float]] = []
        for number in range(1, 101):
            await get_msg(server.base_url, 1)
            files = per_worker(directory, "counter", REQUESTS, route="/msg")
            if sum(files.values()) != number:
                behind.append((number, sum(files.values())))
        assert behind == []
