"""The test server over real HTTP: Hypercorn on 127.0.0.1, port 0, httpx as client."""

from __future__ import annotations

import uuid

import httpx
import pytest
import trio

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background


async def specification_flow(client: httpx.AsyncClient) -> None:
    """The seeds' specification test flow, step by step."""
    assert (await client.get("/health")).status_code == 200
    await client.post("/fail/count/3")
    for _ in range(3):
        response = await client.get("/msg")
        assert response.status_code == 500
        assert response.json() == {"detail": "Induced server failure"}
    assert (await client.get("/msg")).status_code == 200
    headers = {"X-Request-ID": "test-123"}
    uuid_a = (await client.get("/msg", headers=headers)).json()["message_id"]
    assert (await client.get("/msg", headers=headers)).json()["message_id"] == uuid_a
    await client.post("/fail/count/1")
    assert (await client.get("/msg", headers=headers)).status_code == 500
    response = await client.get("/msg", headers=headers)
    assert response.status_code == 200
    assert response.json()["message_id"] == uuid_a


async def test_specification_flow() -> None:
    """The specification flow passes against a real server in process."""
    async with (
        serve_in_background() as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        assert base_url.startswith("http://127.0.0.1:")
        await specification_flow(client)


async def test_concurrent_duplicates_get_one_uuid() -> None:
    """20 concurrent requests with one X-Request-ID all get the same UUID; all but
    the one that made it are marked as replays."""
    answers: list[str] = []
    replayed: list[str | None] = []
    async with (
        serve_in_background() as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):

        async def call() -> None:
            response = await client.get(
                "/msg", params={"delay": 200}, headers={"X-Request-ID": "dup"}
            )
            answers.append(response.json()["message_id"])
            replayed.append(response.headers.get("Idempotent-Replayed"))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(call)
    assert len(answers) == 20
    assert len(set(answers)) == 1
    uuid.UUID(answers[0])
    assert sorted(replayed, key=str) == [None] + ["true"] * 19


async def test_concurrency_limit_serves_in_waves() -> None:
    """6 requests of 300 ms with max_concurrency=2 cannot finish before 3 waves."""
    settings = ServerSettings(max_concurrency=2)
    async with (
        serve_in_background(settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        await client.get("/health")  # connection warm-up
        start = trio.current_time()

        async def call() -> None:
            response = await client.get("/msg", params={"delay": 300})
            assert response.status_code == 200

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(call)
        elapsed = trio.current_time() - start
    # Without the limit this takes ~0.3 s; with it, three waves of 0.3 s.
    assert elapsed >= 0.9


async def test_timeout_is_504() -> None:
    """A request still running at request_timeout is answered 504."""
    settings = ServerSettings(request_timeout=0.3)
    async with (
        serve_in_background(settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        response = await client.get("/msg", params={"delay": 5000})
    assert response.status_code == 504
    assert response.json() == {"detail": "Request timed out"}


async def test_saturation_is_503_with_retry_after() -> None:
    """With every slot busy past queue_timeout, a request is shed with 503."""
    settings = ServerSettings(max_concurrency=1, queue_timeout=0.2)
    results: dict[str, httpx.Response] = {}
    async with (
        serve_in_background(settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):

        async def call(name: str, delay: int) -> None:
            results[name] = await client.get("/msg", params={"delay": delay})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "holder", 1000)
            await trio.sleep(0.1)
            nursery.start_soon(call, "shed", 0)
    assert results["holder"].status_code == 200
    assert results["shed"].status_code == 503
    assert results["shed"].json() == {"detail": "Server is at capacity"}
    assert results["shed"].headers["Retry-After"] == "1"


async def test_serve_in_background_leaves_nothing_running() -> None:
    """After the block the server is gone: no task remains, the port is closed."""
    me = trio.lowlevel.current_task()
    before = list(me.child_nurseries)
    async with (
        serve_in_background() as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        assert (await client.get("/health")).status_code == 200
    assert me.child_nurseries == before
    async with httpx.AsyncClient(base_url=base_url) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/health")


async def test_serve_in_background_lets_block_errors_through() -> None:
    """An exception in the block propagates as itself, not in an exception group."""
    with pytest.raises(KeyError, match="mine"):
        async with serve_in_background():
            raise KeyError("mine")


async def test_resilience_server_fixture(resilience_server: str) -> None:
    """The pytest plugin's fixture yields the URL of a live server."""
    async with httpx.AsyncClient(base_url=resilience_server) as client:
        response = await client.get("/health")
        assert response.json()["status"] == "ok"
        assert (await client.get("/openapi.json")).status_code == 404  # docs off
