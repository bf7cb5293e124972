"""The job queue across ``serve --workers 4 --state-url redis://...``: a job whose
worker is SIGKILLed mid-job runs again on another, and 10,000 jobs survive random
worker kills with none lost.

The real command line runs in a subprocess against the session's redis-server;
which worker runs a job is read from the job's hash in Redis (its ``owner``
consumer is ``host:pid:token``).
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

from trio_resilience.redis import RedisConnection, open_redis

from .conftest import CLIServer, cli_server
from .test_workers_redis import (
    WORKERS,
    fresh_get,
    wait_for_listening_workers,
    worker_pids,
)


@asynccontextmanager
async def jobs_server(url: str, **env: str) -> AsyncIterator[CLIServer]:
    async with cli_server(
        "--workers", str(WORKERS), "--state-url", url, env=env
    ) as server:
        await wait_for_listening_workers(server, WORKERS)
        yield server


async def owner_pid(redis: RedisConnection, job_id: str) -> int | None:
    owner = await redis.run(lambda c: c.hget(f"tr:jobs:job:{job_id}", "owner"))
    return None if owner is None else int(owner.decode().split(":")[1])


async def job_of(base_url: str, job_id: str) -> dict[str, Any]:
    """The job over a fresh connection: a kept-alive one may lead to the worker
    just killed (the kill races the next request on it: a reset)."""
    answer = await fresh_get(base_url, f"/api/v1/jobs/{job_id}")
    assert answer.status_code == 200, answer.text
    job: dict[str, Any] = answer.json()
    return job


async def test_a_job_whose_worker_is_killed_runs_again_elsewhere(
    redis_url: str,
) -> None:
    """SIGKILL the worker running a job: another takes the job over within the
    lease + 1 s (attempt 2) and completes it; a new worker replaces the dead one."""
    lease = 2.0
    duration = 1.0
    async with (
        jobs_server(redis_url, SERVER_JOB_LEASE_SECONDS=str(lease)) as server,
        open_redis(redis_url) as redis,
        httpx.AsyncClient(base_url=server.base_url) as client,
    ):
        submitted = await client.post(
            "/api/v1/jobs",
            json={"type": "long_running", "payload": {"duration": duration}},
        )
        assert submitted.status_code == 202
        job_id = submitted.json()["id"]
        with trio.fail_after(10):
            while True:  # polled: the job starts in another process
                pid = await owner_pid(redis, job_id)
                if pid is not None:
                    break
                await trio.sleep(0.01)
        assert pid in worker_pids(server)
        os.kill(pid, signal.SIGKILL)
        killed_at = trio.current_time()
        with trio.fail_after(lease + 10):
            while True:  # polled: over HTTP, as a client would
                job = await job_of(server.base_url, job_id)
                if job["attempt"] == 2:
                    break
                await trio.sleep(0.02)
        taken_over = trio.current_time() - killed_at
        with trio.fail_after(lease + 10):
            while True:
                job = await job_of(server.base_url, job_id)
                if job["status"] == "completed":
                    break
                await trio.sleep(0.02)
        completed = trio.current_time() - killed_at
        print(
            f"lease {lease}s: taken over {taken_over:.2f}s after the kill, "
            f"completed after {completed:.2f}s (the job runs {duration}s)"
        )
        assert taken_over <= lease + 1
        assert completed <= lease + 1 + duration
        assert job["attempt"] == 2
        assert job["final_result"] == {"duration": duration}
        assert await owner_pid(redis, job_id) is None
        await wait_for_listening_workers(server, WORKERS + 1)
        assert server.process.poll() is None
        assert (await fresh_get(server.base_url, "/health")).status_code == 200


async def test_any_worker_lists_and_cancels_any_job(redis_url: str) -> None:
    """A running job, submitted to one worker, is listed and cancelled through
    fresh connections (so any worker may answer)."""
    async with jobs_server(redis_url) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            submitted = await client.post(
                "/api/v1/jobs",
                json={"type": "long_running", "payload": {"duration": 60}},
            )
        job_id = submitted.json()["id"]
        with trio.fail_after(10):
            while True:  # polled: the job starts in another process
                if (await fresh_get(server.base_url, f"/api/v1/jobs/{job_id}")).json()[
                    "status"
                ] == "running":
                    break
                await trio.sleep(0.02)
        for _ in range(8):
            listed = (await fresh_get(server.base_url, "/api/v1/jobs")).json()
            assert [job["id"] for job in listed["jobs"]] == [job_id]
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            asked = await client.delete(f"/api/v1/jobs/{job_id}")
        assert asked.status_code == 200
        with trio.fail_after(5):
            while True:  # polled: its worker cancels it at its next heartbeat
                job = (
                    await fresh_get(server.base_url, f"/api/v1/jobs/{job_id}")
                ).json()
                if job["status"] == "cancelled":
                    break
                await trio.sleep(0.02)
        assert job["error"] == "cancelled"
        missing = await fresh_get(server.base_url, "/api/v1/jobs/nope")
        assert missing.status_code == 404


# A submission cut by a worker's death leaves httpx's request-body generator
# unfinished; trio's finalizer warns when it is collected.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*ByteStream:pytest.PytestUnraisableExceptionWarning"
)
async def test_ten_thousand_jobs_and_random_kills_lose_nothing(
    redis_url: str,
) -> None:
    """10,000 jobs submitted over 40 connections while 5 random workers are
    SIGKILLed: every job completes; only jobs running on a killed worker ran
    twice (counted and printed)."""
    total, kills, job_workers = 10_000, 5, 4
    env = {
        "SERVER_JOB_LEASE_SECONDS": "1",
        "SERVER_JOB_QUEUE_SIZE": str(total),
        "SERVER_JOB_WORKERS": str(job_workers),
    }
    rng = random.Random(12)
    async with (
        jobs_server(redis_url, **env) as server,
        open_redis(redis_url) as redis,
    ):
        ids: dict[int, str] = {}
        resubmitted = 0

        async def submit(numbers: range) -> None:
            nonlocal resubmitted
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                for number in numbers:
                    for attempt in range(50):
                        try:
                            answer = await client.post(
                                "/api/v1/jobs",
                                json={
                                    "type": "long_running",
                                    "payload": {"duration": 0.002 * (number % 5)},
                                },
                                headers={"X-Request-ID": f"job-{number}"},
                            )
                        except httpx.TransportError:
                            answer = None  # its worker died: the same id again
                        if answer is not None and answer.status_code == 202:
                            ids[number] = answer.json()["id"]
                            resubmitted += attempt > 0
                            break
                        await trio.sleep(0.05)
                    else:
                        raise AssertionError(f"job {number} was never accepted")

        killed: set[int] = set()

        async def kill_workers() -> None:
            for _ in range(kills):
                await trio.sleep(0.5 + rng.random())
                alive = [pid for pid in worker_pids(server) if pid not in killed]
                victim = rng.choice(alive)
                killed.add(victim)
                os.kill(victim, signal.SIGKILL)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(kill_workers)
            step = total // 40
            for start in range(0, total, step):
                nursery.start_soon(submit, range(start, start + step))
        assert len(ids) == total
        assert len(set(ids.values())) == total  # one job per request id
        with trio.fail_after(120):
            while True:  # polled: the jobs run in other processes
                finished = await _count(redis, "completed")
                if finished == total:
                    break
                await trio.sleep(0.2)
        attempts = await _attempts(redis, list(ids.values()))
        twice = sum(1 for attempt in attempts if attempt > 1)
        print(
            f"{total} jobs, {kills} workers killed: 0 lost, {twice} ran more than "
            f"once, {resubmitted} submissions retried after a dropped connection"
        )
        assert all(attempt >= 1 for attempt in attempts)
        # A kill interrupts at most the jobs its worker was running.
        assert twice <= kills * job_workers
        # Each kill was replaced (a worker may have been killed before it
        # listened, so count the starts, not the "Running on" lines).
        with trio.fail_after(30):
            while True:  # polled: the supervisor's log, from a subprocess
                if len(worker_pids(server)) >= WORKERS + kills:
                    break
                await trio.sleep(0.05)
        assert server.process.poll() is None
        for _ in range(8):
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                assert (await client.get("/health")).status_code == 200


async def _count(redis: RedisConnection, status: str) -> int:
    script = redis.script(
        """
        local n = 0
        for _, id in ipairs(redis.call('ZRANGE', 'tr:jobs:order', 0, -1)) do
          if redis.call('HGET', 'tr:jobs:job:' .. id, 'status') == ARGV[1] then
            n = n + 1
          end
        end
        return n
        """
    )
    return int(await script([], [status]))


async def _attempts(redis: RedisConnection, ids: list[str]) -> list[int]:
    script = redis.script(
        """
        local found = {}
        for i, id in ipairs(ARGV) do
          found[i] = tonumber(redis.call('HGET', 'tr:jobs:job:' .. id, 'attempt'))
        end
        return found
        """
    )
    attempts: list[int] = []
    for start in range(0, len(ids), 1000):
        attempts += [
            int(value) for value in await script([], ids[start : start + 1000])
        ]
    return attempts
