"""The job API and the CRUD demo over real HTTP (Hypercorn on 127.0.0.1)."""

from __future__ import annotations

import json

import httpx
import trio

from trio_resilience import ClientConfig, ResilientClient
from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background


async def poll(
    client: httpx.AsyncClient,
    location: str,
    until: tuple[str, ...] = ("completed", "failed", "cancelled"),
) -> dict[str, object]:
    """GET ``location`` until the job's status is one of ``until`` (10 s at most)."""
    with trio.fail_after(10):
        while True:
            job: dict[str, object] = (await client.get(location)).json()
            if job["status"] in until:
                return job
            await trio.sleep(0.05)


async def test_submit_poll_and_progress() -> None:
    """A data_processing job reports each step and completes, polled over HTTP."""
    async with (
        serve_in_background() as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        response = await client.post(
            "/api/v1/jobs",
            json={
                "type": "data_processing",
                "payload": {"items": [1, 2, 3, 4], "step_delay": 0.05},
            },
        )
        assert response.status_code == 202
        job = await poll(client, response.headers["Location"])
    assert job["status"] == "completed"
    assert job["final_result"] == {"count": 4, "sum": 20, "mean": 5.0}
    assert len(job["intermediate_results"]) == 3  # type: ignore[arg-type]


async def test_cancel_and_full_queue_over_http() -> None:
    """DELETE cancels a running job; a full queue answers 503."""
    settings = ServerSettings(job_workers=1, job_queue_size=1, shutdown_grace_period=1)
    slow = {"type": "long_running", "payload": {"duration": 30}}
    async with (
        serve_in_background(settings) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        running = (await client.post("/api/v1/jobs", json=slow)).json()
        await poll(client, f"/api/v1/jobs/{running['id']}", until=("running",))
        assert (await client.post("/api/v1/jobs", json=slow)).status_code == 202
        full = await client.post("/api/v1/jobs", json=slow)
        assert (full.status_code, full.headers["Retry-After"]) == (503, "1")
        await client.delete(f"/api/v1/jobs/{running['id']}")
        job = await poll(client, f"/api/v1/jobs/{running['id']}")
    assert job["status"] == "cancelled"


async def read_response(stream: trio.SocketStream) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body: status, headers, body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, f"EOF before a whole response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    while len(body) < int(headers["content-length"]):
        chunk = await stream.receive_some(65536)
        assert chunk, "EOF inside the body"
        body += chunk
    return int(status_line.split()[1]), headers, body


async def test_concurrent_posts_with_one_request_id_over_http() -> None:
    """10 POSTs with one X-Request-ID, bodies done at once: 1 created, 9 replays."""
    body = json.dumps({"type": "echo", "payload": {"n": 1}}).encode()
    head = (
        "POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/json\r\nX-Request-ID: one-key\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    answers: list[tuple[int, dict[str, str], bytes]] = []
    async with serve_in_background() as url:
        port = int(url.rsplit(":", 1)[1])
        streams = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(10)]
        try:
            for stream in streams:  # everything but the last byte of each body
                await stream.send_all(head + body[:-1])
            async with trio.open_nursery() as nursery:
                for stream in streams:
                    nursery.start_soon(stream.send_all, body[-1:])
            for stream in streams:
                answers.append(await read_response(stream))
        finally:
            for stream in streams:
                await stream.aclose()
        async with httpx.AsyncClient(base_url=url) as client:
            jobs = (await client.get("/api/v1/jobs")).json()["jobs"]
    assert [status for status, _, _ in answers] == [202] * 10
    replayed = [headers.get("idempotent-replayed") for _, headers, _ in answers]
    assert replayed.count("true") == 9
    assert replayed.count(None) == 1
    assert {json.loads(body)["id"] for _, _, body in answers} == {
        job["id"] for job in jobs
    }
    assert len(jobs) == 1


async def test_resilient_client_retrying_a_write_creates_one_item() -> None:
    """Two POSTs with one request id (a retried write) create a single item."""
    async with serve_in_background() as url:
        async with ResilientClient(ClientConfig(base_url=url)) as client:
            item = {"name": "pen", "price": 2.5}
            first = await client.post("/api/v1/items", json=item, request_id="w-1")
            again = await client.post("/api/v1/items", json=item, request_id="w-1")
            items = (await client.get("/api/v1/items")).json()["items"]
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(items) == 1
