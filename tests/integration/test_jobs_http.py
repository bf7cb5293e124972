"""The job API and the CRUD demo over real HTTP (Hypercorn on 127.0.0.1)."""

from __future__ import annotations

import httpx
import trio

from trio_resilience import ClientConfig, ResilientClient
from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background


async def poll(client: httpx.AsyncClient, location: str) -> dict[str, object]:
    with trio.fail_after(10):
        while True:
            job: dict[str, object] = (await client.get(location)).json()
            if job["status"] in ("completed", "failed", "cancelled"):
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
        await trio.sleep(0.2)
        assert (await client.post("/api/v1/jobs", json=slow)).status_code == 202
        full = await client.post("/api/v1/jobs", json=slow)
        assert (full.status_code, full.headers["Retry-After"]) == (503, "1")
        await client.delete(f"/api/v1/jobs/{running['id']}")
        job = await poll(client, f"/api/v1/jobs/{running['id']}")
    assert job["status"] == "cancelled"


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
