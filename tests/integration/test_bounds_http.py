"""Bounded, strict job API against a real server: body size (declared and chunked),
bytes kept, pages, strict JSON, idempotency keys and stable timestamps.

Raw sockets where httpx would hide what is pinned (a chunked body that never ends,
a Content-Length without its body); httpx elsewhere.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import trio

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background

from .test_connections import RawConnection, connect
from .test_jobs_http import poll

QUIET = ServerSettings(log_level="ERROR", shutdown_grace_period=1)
TOO_LARGE = {"detail": "Request body is larger than 1048576 bytes"}


def refuse(constant: str) -> None:
    """A json.loads parse_constant refusing NaN and Infinity, as strict parsers do."""
    raise ValueError(f"not JSON: {constant}")


async def send_until_refused(connection: RawConnection, data: bytes) -> None:
    """Send ``data``; a server that answered and closed without reading it all
    resets the connection, which is what the caller expects."""
    with contextlib.suppress(trio.BrokenResourceError):
        await connection.send(data)


def submit_head(**headers: str) -> bytes:
    lines = [
        "POST /api/v1/jobs HTTP/1.1",
        "Host: 127.0.0.1",
        "Content-Type: application/json",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_a_chunked_body_is_refused_as_it_passes_the_limit() -> None:
    """A chunked body gets a JSON 413 as it passes 1 MiB, then EOF."""
    chunk = b"a" * 65536
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)
    async with (
        serve_in_background(QUIET) as url,
        connect(url) as connection,
    ):
        await connection.send(submit_head(**{"Transfer-Encoding": "chunked"}))
        await connection.send(b'5\r\n{"x":\r\n')
        sent = 0

        async def stream_body() -> None:
            nonlocal sent
            try:
                for _ in range(64):  # 4 MiB at most, and no terminating chunk
                    await connection.send(framed)
                    sent += len(chunk)
            except trio.BrokenResourceError:
                pass  # the server stopped reading: what is pinned here

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream_body)
                response = await connection.response()
                nursery.cancel_scope.cancel()
            await connection.wait_eof()
        async with httpx.AsyncClient(base_url=url) as client:
            jobs = (await client.get("/api/v1/jobs")).json()["jobs"]
    assert response.status == 413
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.body) == TOO_LARGE
    assert response.closes
    assert sent < 4 * 1024 * 1024
    assert jobs == []


async def test_a_declared_length_over_the_limit_is_refused_before_the_body() -> None:
    """Content-Length over 1 MiB: 413 at once, without waiting for the body."""
    async with (
        serve_in_background(QUIET) as url,
        connect(url) as connection,
    ):
        await connection.send(submit_head(**{"Content-Length": "1048577"}))
        with trio.fail_after(5):
            response = await connection.response()
            await connection.wait_eof()
    assert (response.status, json.loads(response.body)) == (413, TOO_LARGE)
    assert response.closes


async def test_the_issues_eight_megabyte_jobs_are_refused() -> None:
    """The issue's 8 MB echo jobs, sent whole: 413s, and none is kept."""
    body = json.dumps({"type": "echo", "payload": {"blob": "x" * 8_000_000}}).encode()
    head = submit_head(**{"Content-Length": str(len(body))})
    responses = []
    async with serve_in_background(QUIET) as url:
        for _ in range(3):
            async with connect(url) as connection:
                await connection.send(head)
                with trio.fail_after(10):
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(send_until_refused, connection, body)
                        responses.append(await connection.response())
                        nursery.cancel_scope.cancel()
        async with httpx.AsyncClient(base_url=url) as client:
            listed = await client.get("/api/v1/jobs")
    assert [(r.status, json.loads(r.body)) for r in responses] == [(413, TOO_LARGE)] * 3
    assert listed.json() == {"jobs": [], "next": None}


async def test_the_job_list_is_bounded_by_the_bytes_kept() -> None:
    """With 4 MiB retained, 30 jobs of 500 kB keep the last 4; the list fits."""
    settings = QUIET.model_copy(update={"job_max_retained_bytes": 4 * 1024 * 1024})
    payload = {"blob": "x" * 500_000}
    async with (
        serve_in_background(settings) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        ids = []
        for _ in range(30):
            job = (
                await client.post(
                    "/api/v1/jobs", json={"type": "echo", "payload": payload}
                )
            ).json()
            ids.append(job["id"])
        await poll(client, f"/api/v1/jobs/{ids[-1]}")
        listed = await client.get("/api/v1/jobs?limit=1000")
    jobs = listed.json()["jobs"]
    assert [job["id"] for job in jobs] == ids[-4:]
    assert len(listed.content) < 4 * 1024 * 1024


async def test_non_finite_numbers_are_refused_and_never_served() -> None:
    """NaN and 1e400 in a payload are 422s; the job list stays strict JSON."""
    async with (
        serve_in_background(QUIET) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        answers = [
            await client.post(
                "/api/v1/jobs",
                content=f'{{"type": "echo", "payload": {{"x": {number}}}}}',
                headers={"Content-Type": "application/json"},
            )
            for number in ("NaN", "1e400", "-Infinity")
        ]
        overflow = await client.post(
            "/api/v1/jobs",
            json={"type": "data_processing", "payload": {"items": [1e308]}},
        )
        await poll(client, overflow.headers["Location"])
        listed = await client.get("/api/v1/jobs")
    assert [answer.status_code for answer in answers] == [422] * 3
    for answer in answers:
        assert answer.json()["detail"][0]["loc"] == ["body", "payload", "x"]
    jobs = json.loads(listed.content, parse_constant=refuse)["jobs"]
    assert [job["status"] for job in jobs] == ["failed"]


async def test_pages_over_http_serve_every_job_once() -> None:
    """Following next links from GET /api/v1/jobs?limit=40 serves 150 jobs once."""
    async with (
        serve_in_background(QUIET) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        ids = [
            (await client.post("/api/v1/jobs", json={"type": "echo"})).json()["id"]
            for _ in range(150)
        ]
        seen: list[str] = []
        pages = 0
        next_url: str | None = "/api/v1/jobs?limit=40"
        while next_url is not None:
            page: dict[str, Any] = (await client.get(next_url)).json()
            seen.extend(job["id"] for job in page["jobs"])
            next_url = page["next"]
            pages += 1
        default = (await client.get("/api/v1/jobs")).json()
    assert seen == ids
    assert pages == 4
    assert len(default["jobs"]) == 100
    assert default["next"] == "/api/v1/jobs?limit=100&after=100"


async def test_a_request_id_replays_only_the_same_body_over_http() -> None:
    """The same X-Request-ID: same body replays (202), another body is a 422."""
    headers = {"X-Request-ID": "report-7"}
    async with (
        serve_in_background(QUIET) as url,
        httpx.AsyncClient(base_url=url, headers=headers) as client,
    ):
        job = {"type": "echo", "payload": {"n": 1}}
        first = await client.post("/api/v1/jobs", json=job)
        again = await client.post("/api/v1/jobs", json=job)
        other = await client.post(
            "/api/v1/jobs", json={"type": "echo", "payload": {"n": 2}}
        )
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "X-Request-ID"]


async def test_job_times_are_the_same_on_every_read_over_http() -> None:
    """Two GETs of one job return identical created/started/finished times."""
    async with (
        serve_in_background(QUIET) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        location = (await client.post("/api/v1/jobs", json={"type": "echo"})).headers[
            "Location"
        ]
        reads = [(await client.get(location)).json() for _ in range(5)]
    times = {(r["created_at"], r["started_at"], r["finished_at"]) for r in reads}
    assert len(times) == 1
