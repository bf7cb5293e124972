"""Memory bounds and strict JSON of the server, through Quart's test client on
virtual time: body size, bytes of retained jobs, results of one job."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from quart.testing import QuartClient

from trio_resilience.server import ResilienceTestApp, ServerSettings, create_app
from trio_resilience.server._responses import json_response, non_finite_numbers


@asynccontextmanager
async def app_for(**settings: Any) -> AsyncIterator[ResilienceTestApp]:
    settings.setdefault("shutdown_grace_period", 1)
    app = create_app(ServerSettings(**settings))
    async with app.test_app():
        yield app


async def post(
    client: QuartClient, path: str, body: bytes, *, length: bool = False
) -> Any:
    """POST ``body`` as JSON; with ``length``, declare its Content-Length (the
    test client sends none of its own)."""
    headers = {"Content-Type": "application/json"}
    if length:
        headers["Content-Length"] = str(len(body))
    return await client.post(path, data=body, headers=headers)


def echo_body(total: int) -> bytes:
    """An echo job submission of exactly ``total`` bytes."""
    empty = json.dumps({"type": "echo", "payload": {"x": ""}}).encode()
    body = json.dumps({"type": "echo", "payload": {"x": "a" * (total - len(empty))}})
    assert len(body) == total
    return body.encode()


def test_the_default_body_limit_is_one_mebibyte() -> None:
    """SERVER_MAX_BODY_BYTES defaults to 1 MiB."""
    assert ServerSettings().max_body_bytes == 1_048_576


@pytest.mark.parametrize("length", [False, True])
async def test_a_job_body_over_the_limit_is_413(
    autojump_clock: trio.testing.MockClock, length: bool
) -> None:
    """A job body 1 byte over the limit is a JSON 413; one at the limit is not."""
    async with app_for() as app:
        client = app.test_client()
        over = await post(client, "/api/v1/jobs", echo_body(1_048_577), length=length)
        at = await post(client, "/api/v1/jobs", echo_body(1_048_576), length=length)
        retained = app.state.jobs.statistics().retained
    assert over.status_code == 413
    assert over.headers["Content-Type"] == "application/json"
    assert await over.get_json() == {
        "detail": "Request body is larger than 1048576 bytes"
    }
    assert at.status_code == 202
    assert retained == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/items"),
        ("PUT", "/api/v1/items/1"),
        ("POST", "/api/v1/users"),
        ("POST", "/fail/reset"),
        ("POST", "/fail/count/1"),
    ],
)
async def test_every_route_refuses_a_declared_body_over_the_limit(
    autojump_clock: trio.testing.MockClock, method: str, path: str
) -> None:
    """A Content-Length over the limit is a 413 on any route; the route never runs."""
    async with app_for(max_body_bytes=100) as app:
        client = app.test_client()
        body = b'{"name": "' + b"x" * 100 + b'", "price": 1}'
        response = await client.open(
            path,
            method=method,
            data=body,
            headers={
                "Content-Type": "application/json",
                "Content-Length": str(len(body)),
            },
        )
        status = await (await client.get("/fail/status")).get_json()
    assert response.status_code == 413
    assert await response.get_json() == {
        "detail": "Request body is larger than 100 bytes"
    }
    assert status["count_remaining"] == 0


async def test_finished_jobs_are_bounded_by_bytes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """job_max_retained_bytes bounds finished jobs' bytes, the oldest going first."""
    limit = 200_000
    async with app_for(job_max_retained_bytes=limit) as app:
        client = app.test_client()
        ids = []
        for _ in range(30):
            response = await post(client, "/api/v1/jobs", echo_body(20_000))
            ids.append((await response.get_json())["id"])
            await trio.sleep(0.1)
        stats = app.state.jobs.statistics()
        listed = await (await client.get("/api/v1/jobs?limit=1000")).get_json()
    kept = [job["id"] for job in listed["jobs"]]
    payload = json.loads(echo_body(20_000))["payload"]
    per_job = 2 * len(json.dumps(payload, separators=(",", ":")))  # payload + result
    assert stats.retained_bytes == len(kept) * per_job <= limit
    assert len(kept) == stats.retained == limit // per_job
    assert kept == ids[-len(kept) :]


async def test_one_jobs_result_is_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """job_max_result_bytes bounds a job's results: past it, the job fails."""
    async with app_for(job_max_result_bytes=1000) as app:
        client = app.test_client()
        small = await (await post(client, "/api/v1/jobs", echo_body(900))).get_json()
        big = await (await post(client, "/api/v1/jobs", echo_body(2000))).get_json()
        await trio.sleep(0.1)
        small = await (await client.get(f"/api/v1/jobs/{small['id']}")).get_json()
        big = await (await client.get(f"/api/v1/jobs/{big['id']}")).get_json()
    assert small["status"] == "completed"
    assert (big["status"], big["final_result"]) == ("failed", None)
    assert big["error"].startswith("ResultTooLargeError: final result would bring")


def test_json_response_never_emits_non_finite_numbers() -> None:
    """json_response refuses NaN and Infinity instead of sending invalid JSON."""
    assert json_response({"x": 1.5}).status_code == 200
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="Out of range float values"):
            json_response({"x": [bad]})


def test_non_finite_numbers_are_located() -> None:
    """non_finite_numbers lists where NaN and infinities sit, in document order."""
    value = {"a": [1.0, math.nan, {"b": math.inf}], "c": "NaN", "d": (2, -math.inf)}
    assert list(non_finite_numbers(value)) == [["a", 1], ["a", 2, "b"], ["d", 1]]
    assert list(non_finite_numbers({"fine": [0.0, 1e308, -1]})) == []
