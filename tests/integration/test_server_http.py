"""The test server over real HTTP: Hypercorn on 127.0.0.1, port 0, httpx as client."""

from __future__ import annotations

import uuid

import httpx
import pytest
import trio
from structlog.testing import capture_logs

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background


async def wait_until_msg_in_flight(base_url: str, count: int = 1) -> None:
    """Poll until ``count`` /msg requests have reached the route (past the slot)."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        with trio.fail_after(10):
            while True:
                status = (await client.get("/fail/status")).json()
                if status["requests_seen"] >= count:
                    return
                await trio.sleep(0.01)


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
            await wait_until_msg_in_flight(base_url)
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


async def test_leaving_the_block_drains_in_flight_requests() -> None:
    """A request in flight when the block exits is answered before the block ends."""
    results: list[httpx.Response] = []
    async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:
        async with serve_in_background() as base_url:

            async def slow() -> None:
                url = f"{base_url}/msg"
                results.append(await client.get(url, params={"delay": 1000}))

            nursery.start_soon(slow)
            await wait_until_msg_in_flight(base_url)
    assert [r.status_code for r in results] == [200]


async def test_block_error_still_drains_and_propagates_as_itself() -> None:
    """A block that raises still lets in-flight requests finish; its error is
    raised unchanged."""
    results: list[httpx.Response] = []

    async def fail_while_a_request_runs(
        client: httpx.AsyncClient, nursery: trio.Nursery
    ) -> None:
        async with serve_in_background() as base_url:

            async def slow() -> None:
                url = f"{base_url}/msg"
                results.append(await client.get(url, params={"delay": 500}))

            nursery.start_soon(slow)
            await wait_until_msg_in_flight(base_url)
            raise KeyError("mine")

    async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:
        with pytest.raises(KeyError, match="mine") as raised:
            await fail_while_a_request_runs(client, nursery)
    assert type(raised.value) is KeyError
    assert [r.status_code for r in results] == [200]


async def test_requests_past_the_grace_period_are_cut() -> None:
    """With shutdown_grace_period=0.5 a 5 s request is cut after about 0.5 s (and
    logged as cancelled); the block exits then."""
    settings = ServerSettings(shutdown_grace_period=0.5)
    errors: list[httpx.HTTPError] = []
    with capture_logs() as logs:
        async with httpx.AsyncClient() as client, trio.open_nursery() as nursery:
            async with serve_in_background(settings) as base_url:

                async def slow() -> None:
                    try:
                        await client.get(f"{base_url}/msg", params={"delay": 5000})
                    except httpx.HTTPError as error:
                        errors.append(error)

                nursery.start_soon(slow)
                await wait_until_msg_in_flight(base_url)
                leaving = trio.current_time()
            took = trio.current_time() - leaving
    assert 0.45 <= took < 3
    assert [type(e) for e in errors] == [httpx.RemoteProtocolError]
    (line,) = [e for e in logs if e.get("path") == "/msg"]
    assert (line["status"], line["outcome"]) == (500, "cancelled")


async def test_resilience_server_fixture(resilience_server: str) -> None:
    """The pytest plugin's fixture yields the URL of a live server."""
    async with httpx.AsyncClient(base_url=resilience_server) as client:
        response = await client.get("/health")
        assert response.json()["status"] == "ok"
        assert (await client.get("/openapi.json")).status_code == 404  # docs off
