"""``serve --workers 4 --state-url redis://...``: one behaviour across worker
processes, supervision of the workers, and Redis lost and back while serving.

Each test runs the real command line in a subprocess against the session's own
redis-server (or one of the test's own, for the stop/restart test) and talks to
it over fresh connections, so the requests are spread over the workers by the
kernel's accept queue, as in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio

from .conftest import CLIServer, RedisServer, cli_server, start_redis

WORKERS = 4


@asynccontextmanager
async def workers_server(url: str, *args: str) -> AsyncIterator[CLIServer]:
    async with cli_server(
        "--workers", str(WORKERS), "--state-url", url, *args
    ) as server:
        await wait_for_listening_workers(server, WORKERS)
        yield server


def worker_pids(server: CLIServer) -> list[int]:
    """The pids of the workers the supervisor started, in order, from its log."""
    return [
        line["pid"]
        for line in server.json_lines()
        if line.get("event") == "worker started"
    ]


def listening(server: CLIServer) -> int:
    return sum("Running on" in line for line in server.lines)


async def wait_for_listening_workers(server: CLIServer, count: int) -> None:
    with trio.fail_after(30):
        while True:  # polled: the lines come from a subprocess's output
            if listening(server) >= count:
                return
            await trio.sleep(0.05)


async def fresh_get(base_url: str, path: str, **headers: str) -> httpx.Response:
    """One request on a connection of its own (so any worker may accept it)."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        return await client.get(path, headers=headers)


async def test_a_failure_count_holds_across_workers(redis_url: str) -> None:
    """/fail/count/3, then 40 requests on fresh connections: exactly the first 3
    fail, whichever workers they reach."""
    async with workers_server(redis_url) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            armed = await client.post("/fail/count/3")
        assert armed.json()["count_remaining"] == 3
        statuses = [
            (await fresh_get(server.base_url, "/msg")).status_code for _ in range(40)
        ]
        assert statuses == [500] * 3 + [200] * 37
        status = (await fresh_get(server.base_url, "/fail/status")).json()
        assert status["failures_injected"] == 3
        assert status["requests_seen"] == 40


async def test_one_request_id_gets_one_uuid_across_workers(redis_url: str) -> None:
    """One X-Request-ID sent 50 times at once on 50 connections: one message id,
    49 marked as replays."""
    async with workers_server(redis_url) as server:
        answers: list[httpx.Response] = []

        async def send() -> None:
            answers.append(
                await fresh_get(
                    server.base_url, "/msg?delay=50", **{"X-Request-ID": "same"}
                )
            )

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(send)
        assert {r.status_code for r in answers} == {200}
        assert len({r.json()["message_id"] for r in answers}) == 1
        replays = [r for r in answers if r.headers.get("Idempotent-Replayed") == "true"]
        assert len(replays) == 49


async def test_crud_is_one_collection_across_workers(redis_url: str) -> None:
    """One X-Request-ID posted 30 times at once on 30 connections creates one
    item; every worker then lists it, and a delete seen by one is seen by all."""
    async with workers_server(redis_url) as server:
        answers: list[httpx.Response] = []

        async def post() -> None:
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                answers.append(
                    await client.post(
                        "/api/v1/items",
                        json={"name": "pen", "price": 1.5},
                        headers={"X-Request-ID": "one-pen"},
                    )
                )

        async with trio.open_nursery() as nursery:
            for _ in range(30):
                nursery.start_soon(post)
        assert {r.status_code for r in answers} == {201}
        assert len({r.json()["id"] for r in answers}) == 1
        replays = [r for r in answers if r.headers.get("Idempotent-Replayed") == "true"]
        assert len(replays) == 29
        record_id = answers[0].json()["id"]
        for _ in range(12):
            listed = (await fresh_get(server.base_url, "/api/v1/items")).json()
            assert [item["id"] for item in listed["items"]] == [record_id]
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            gone = await client.delete(f"/api/v1/items/{record_id}")
        assert gone.status_code == 204
        for _ in range(12):
            read = await fresh_get(server.base_url, f"/api/v1/items/{record_id}")
            assert read.status_code == 404


async def test_a_killed_worker_is_replaced_and_the_others_keep_serving(
    redis_url: str,
) -> None:
    """SIGKILL one worker: requests keep succeeding, and a new worker starts."""
    async with workers_server(redis_url) as server:
        first = worker_pids(server)
        assert len(first) == WORKERS
        os.kill(first[0], signal.SIGKILL)
        for _ in range(20):
            assert (await fresh_get(server.base_url, "/msg")).status_code == 200
        await wait_for_listening_workers(server, WORKERS + 1)
        pids = worker_pids(server)
        assert len(pids) == WORKERS + 1
        assert pids[-1] not in first
        assert server.process.poll() is None
        died = [
            e
            for e in server.json_lines()
            if e.get("event") == "worker died; replacing it"
        ]
        assert [e["pid"] for e in died] == [first[0]]
        for _ in range(20):
            assert (await fresh_get(server.base_url, "/msg")).status_code == 200


async def test_sigterm_stops_every_worker(redis_url: str) -> None:
    async with workers_server(redis_url) as server:
        pids = worker_pids(server)
        server.terminate()
        with trio.fail_after(20):
            await server.process.wait()
        assert server.process.returncode == 0
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


async def test_redis_lost_while_serving_is_a_503_then_recovers(
    tmp_path: Path,
) -> None:
    """Stop the server's Redis: /msg answers 503 naming the state backend and the
    server keeps running; restart Redis on the same port: 200 again, and jobs
    run again."""
    redis = start_redis(tmp_path)
    try:
        async with workers_server(redis.url()) as server:
            assert (await fresh_get(server.base_url, "/msg")).status_code == 200
            redis.process.terminate()
            redis.process.wait(10)
            down = await fresh_get(server.base_url, "/msg")
            assert down.status_code == 503
            assert down.json()["detail"].startswith(
                "State backend unavailable: Redis at"
            )
            assert down.headers["Retry-After"] == "1"
            assert server.process.poll() is None
            redis = start_redis(tmp_path, redis.port)
            with trio.fail_after(10):
                while True:  # polled: nothing tells the test Redis is back
                    if (await fresh_get(server.base_url, "/msg")).status_code == 200:
                        break
                    await trio.sleep(0.05)
            assert (await fresh_get(server.base_url, "/fail/status")).status_code == 200
            # The new Redis is empty: the job queue makes its group again.
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                submitted = await client.post(
                    "/api/v1/jobs", json={"type": "echo", "payload": {"a": 1}}
                )
                assert submitted.status_code == 202
                with trio.fail_after(10):
                    while True:  # polled: the job runs in another process
                        job = await client.get(submitted.headers["Location"])
                        if job.json()["status"] == "completed":
                            break
                        await trio.sleep(0.05)
            assert server.process.poll() is None
    finally:
        redis.process.kill()
        redis.process.wait()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVER_")}
    return subprocess.run(
        [sys.executable, "-m", "trio_resilience", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_workers_without_a_state_url_are_refused() -> None:
    result = run_cli("serve", "--workers", "4", "--port", "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "workers=4 needs state_url (SERVER_STATE_URL" in result.stderr


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_an_unreachable_redis_stops_start_up() -> None:
    unused_tcp_port = free_port()
    url = f"redis://127.0.0.1:{unused_tcp_port}/0"
    result = run_cli("serve", "--workers", "2", "--port", "0", "--state-url", url)
    assert result.returncode == 2
    assert result.stderr == (
        "Error: cannot use the state backend (SERVER_STATE_URL): Redis at "
        f"127.0.0.1:{unused_tcp_port}/0 is unavailable: Unable to establish a "
        f"connection to 127.0.0.1:{unused_tcp_port}\n"
    )


def test_config_info_names_the_backend(redis_server: RedisServer) -> None:
    import json

    result = run_cli("config-info")
    assert json.loads(result.stdout)["state_backend"] == "memory"
    env = {"SERVER_STATE_URL": redis_server.url(3)}
    shown = subprocess.run(
        [sys.executable, "-m", "trio_resilience", "config-info"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=True,
    )
    assert json.loads(shown.stdout)["state_backend"] == (
        f"redis (127.0.0.1:{redis_server.port}/3)"
    )
