"""The job API and the CRUD demo through Quart's test client, on virtual time."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from quart.testing import QuartClient

from trio_resilience.server import ServerSettings, create_app


def refuse(constant: str) -> None:
    """A json.loads parse_constant refusing NaN and Infinity, as strict parsers do."""
    raise ValueError(f"not JSON: {constant}")


@asynccontextmanager
async def client_for(**settings: Any) -> AsyncIterator[QuartClient]:
    # quart-trio's test app allows 6 s for shutdown (and then leaks its nursery), so
    # jobs still running at the end get a 1 s grace period here, not the default 10.
    settings.setdefault("shutdown_grace_period", 1)
    app = create_app(ServerSettings(**settings))
    async with app.test_app():
        yield app.test_client()


async def test_submit_and_poll(autojump_clock: trio.testing.MockClock) -> None:
    """POST returns 202 + Location at once; polling shows progress, then the result."""
    async with client_for() as client:
        response = await client.post(
            "/api/v1/jobs", json={"type": "long_running", "payload": {"duration": 3}}
        )
        assert response.status_code == 202
        job = await response.get_json()
        assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
        assert job["status"] == "pending"
        await trio.sleep(1.5)
        running = await (await client.get(response.headers["Location"])).get_json()
        assert running["status"] == "running"
        assert running["intermediate_results"] == [{"progress": 0.3333}]
        await trio.sleep(2)
        done = await (await client.get(response.headers["Location"])).get_json()
    assert done["status"] == "completed"
    assert done["final_result"] == {"duration": 3.0}
    assert done["finished_at"] - done["created_at"] == pytest.approx(3.0)
    assert done["error"] is None


async def test_failed_job_reports_its_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A job that would emit Infinity fails with type and message, as strict JSON."""
    async with client_for() as client:
        response = await client.post(
            "/api/v1/jobs",
            json={"type": "data_processing", "payload": {"items": [1e308]}},
        )
        await trio.sleep(1)
        job_response = await client.get(response.headers["Location"])
        listed = await client.get("/api/v1/jobs")
    job = json.loads(await job_response.get_data(), parse_constant=refuse)
    json.loads(await listed.get_data(), parse_constant=refuse)
    assert job["status"] == "failed"
    assert job["error"] == (
        "ValueError: intermediate result is not valid JSON: "
        "Out of range float values are not JSON compliant"
    )


async def test_job_timeout_setting(autojump_clock: trio.testing.MockClock) -> None:
    """SERVER_JOB_TIMEOUT fails jobs that run too long."""
    async with client_for(job_timeout=2) as client:
        response = await client.post(
            "/api/v1/jobs", json={"type": "long_running", "payload": {"duration": 10}}
        )
        await trio.sleep(3)
        job = await (await client.get(response.headers["Location"])).get_json()
    assert (job["status"], job["error"]) == ("failed", "timed out after 2s")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ("{not json", ["body"]),
        ('{"payload": {}}', ["body", "type"]),
        ('{"type": ""}', ["body", "type"]),
        ('{"type": "echo", "payload": [1]}', ["body", "payload"]),
        ('{"type": "echo", "extra": 1}', ["body", "extra"]),
    ],
)
async def test_malformed_body_is_422(
    autojump_clock: trio.testing.MockClock, body: str, loc: list[str]
) -> None:
    """Bad JSON or a body of the wrong shape is a 422 naming the field."""
    async with client_for() as client:
        response = await client.post(
            "/api/v1/jobs", data=body, headers={"Content-Type": "application/json"}
        )
        detail = (await response.get_json())["detail"]
    assert response.status_code == 422
    assert detail[0]["loc"] == loc


async def test_unknown_type_is_400_listing_types(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An unregistered type is a 400 that lists the known types."""
    async with client_for() as client:
        response = await client.post("/api/v1/jobs", json={"type": "mine"})
    assert response.status_code == 400
    assert (await response.get_json())["detail"] == (
        "unknown job type 'mine'; known types: data_processing, echo, long_running"
    )


async def test_full_queue_is_503(autojump_clock: trio.testing.MockClock) -> None:
    """When job_queue_size jobs wait, POST answers 503 with Retry-After."""
    async with client_for(job_workers=1, job_queue_size=1) as client:
        slow = {"type": "long_running", "payload": {"duration": 60}}
        assert (await client.post("/api/v1/jobs", json=slow)).status_code == 202
        await trio.testing.wait_all_tasks_blocked()
        assert (await client.post("/api/v1/jobs", json=slow)).status_code == 202
        full = await client.post("/api/v1/jobs", json=slow)
    assert full.status_code == 503
    assert full.headers["Retry-After"] == "1"
    assert await full.get_json() == {"detail": "Job queue is full"}


async def test_request_id_makes_submission_idempotent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The same X-Request-ID returns the first job, marked as a replay."""
    async with client_for() as client:
        headers = {"X-Request-ID": "submit-1"}
        first = await client.post(
            "/api/v1/jobs", json={"type": "echo"}, headers=headers
        )
        again = await client.post(
            "/api/v1/jobs", json={"type": "echo"}, headers=headers
        )
        listed = await (await client.get("/api/v1/jobs")).get_json()
    assert (await first.get_json())["id"] == (await again.get_json())["id"]
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(listed["jobs"]) == 1


async def test_concurrent_posts_with_one_request_id_create_one_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Of N concurrent POSTs with one X-Request-ID one creates; the rest are replays."""
    responses = []
    async with client_for() as client:

        async def post() -> None:
            responses.append(
                await client.post(
                    "/api/v1/jobs",
                    json={"type": "long_running", "payload": {"duration": 5}},
                    headers={"X-Request-ID": "same"},
                )
            )

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(post)
        listed = await (await client.get("/api/v1/jobs")).get_json()
        ids = {(await response.get_json())["id"] for response in responses}
    assert [r.status_code for r in responses] == [202] * 10
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert sorted(replayed, key=str) == [None] + ["true"] * 9
    assert ids == {job["id"] for job in listed["jobs"]}
    assert len(ids) == 1


async def test_list_filter_cancel_and_404(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """GET ?status= filters; DELETE cancels; unknown ids are 404."""
    async with client_for(job_workers=1) as client:
        slow = {"type": "long_running", "payload": {"duration": 60}}
        running = await (await client.post("/api/v1/jobs", json=slow)).get_json()
        waiting = await (await client.post("/api/v1/jobs", json=slow)).get_json()
        await trio.sleep(1)
        by_status = await (await client.get("/api/v1/jobs?status=pending")).get_json()
        assert [j["id"] for j in by_status["jobs"]] == [waiting["id"]]
        cancelled = await client.delete(f"/api/v1/jobs/{waiting['id']}")
        assert (await cancelled.get_json())["status"] == "cancelled"
        await client.delete(f"/api/v1/jobs/{running['id']}")
        await trio.testing.wait_all_tasks_blocked()
        job = await (await client.get(f"/api/v1/jobs/{running['id']}")).get_json()
        assert job["status"] == "cancelled"
        missing = await client.get("/api/v1/jobs/nope")
        assert (missing.status_code, await missing.get_json()) == (
            404,
            {"detail": "Job not found"},
        )
        assert (await client.delete("/api/v1/jobs/nope")).status_code == 404
        assert (await client.get("/api/v1/jobs?status=bogus")).status_code == 422


async def test_shutdown_leaves_no_job_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Stopping the app cancels running jobs after the grace period."""
    app = create_app(ServerSettings(shutdown_grace_period=2))
    async with app.test_app():
        client = app.test_client()
        slow = {"type": "long_running", "payload": {"duration": 60}}
        job_id = (await (await client.post("/api/v1/jobs", json=slow)).get_json())["id"]
        await trio.sleep(1)
    job = app.state.jobs.get(job_id)
    assert job is not None
    assert job.status.value == "cancelled"
    assert trio.current_time() == 3.0


@pytest.mark.parametrize(
    ("collection", "valid", "invalid"),
    [
        ("items", {"name": "pen", "price": 1.5}, {"name": "pen", "price": -1}),
        ("users", {"name": "Ann", "email": "ann@example.com"}, {"name": "Ann"}),
    ],
)
async def test_crud(
    autojump_clock: trio.testing.MockClock,
    collection: str,
    valid: dict[str, Any],
    invalid: dict[str, Any],
) -> None:
    """Create (idempotent by X-Request-ID), read, list, update, delete."""
    base = f"/api/v1/{collection}"
    async with client_for() as client:
        created = await client.post(base, json=valid, headers={"X-Request-ID": "c1"})
        assert created.status_code == 201
        record = await created.get_json()
        assert created.headers["Location"] == f"{base}/{record['id']}"
        replay = await client.post(base, json=valid, headers={"X-Request-ID": "c1"})
        assert (replay.status_code, await replay.get_json()) == (201, record)
        assert replay.headers["Idempotent-Replayed"] == "true"
        other = await (await client.post(base, json=valid)).get_json()
        assert other["id"] != record["id"]
        listed = await (await client.get(base)).get_json()
        assert [r["id"] for r in listed[collection]] == [record["id"], other["id"]]
        assert await (await client.get(f"{base}/{record['id']}")).get_json() == record
        changed = {**valid, "name": "renamed"}
        updated = await client.put(f"{base}/{record['id']}", json=changed)
        assert (await updated.get_json())["name"] == "renamed"
        bad = await client.post(base, json=invalid)
        assert bad.status_code == 422
        assert (
            await client.put(f"{base}/{record['id']}", json=invalid)
        ).status_code == 422
        assert (await client.delete(f"{base}/{record['id']}")).status_code == 204
        assert (await client.get(f"{base}/{record['id']}")).status_code == 404
        assert (await client.delete(f"{base}/{record['id']}")).status_code == 404
        assert (await client.put(f"{base}/999", json=valid)).status_code == 404


async def test_job_routes_in_openapi(autojump_clock: trio.testing.MockClock) -> None:
    """The job routes document their statuses, body, headers and query."""
    async with client_for() as client:
        spec = await (await client.get("/openapi.json")).get_json()
    paths = spec["paths"]
    submit = paths["/api/v1/jobs"]["post"]
    assert submit["requestBody"]["required"] is True
    assert {"202", "400", "413", "415", "422", "503", "504"} <= set(submit["responses"])
    assert ("X-Request-ID", "header") in [
        (p["name"], p["in"]) for p in submit["parameters"]
    ]
    accepted = submit["responses"]["202"]
    assert {"Location", "Idempotent-Replayed"} <= set(accepted["headers"])
    assert "Retry-After" in submit["responses"]["503"]["headers"]
    listing = paths["/api/v1/jobs"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"limit", "after", "status"}
    assert {"200", "422"} <= set(listing["responses"])
    for method in ("get", "delete"):
        operation = paths["/api/v1/jobs/{job_id}"][method]
        assert {"200", "404"} <= set(operation["responses"])
    for operations in (paths["/api/v1/jobs"], paths["/api/v1/jobs/{job_id}"]):
        for operation in operations.values():
            for response in operation["responses"].values():
                assert set(response["content"]) == {"application/json"}
    assert "/api/v1/items/{record_id}" in paths
    assert "/api/v1/users" in paths


# -- issue 10: validated payloads, a default job timeout, key reuse, stable times,
# strict JSON and pages ------------------------------------------------------------


async def post_raw(client: QuartClient, body: str, **headers: str) -> Any:
    return await client.post(
        "/api/v1/jobs",
        data=body,
        headers={"Content-Type": "application/json", **headers},
    )


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"type": "data_processing", "payload": {"step_delay": 1e9}}, "step_delay"),
        ({"type": "data_processing", "payload": {"items": ["1"]}}, "items.0"),
        ({"type": "data_processing", "payload": {"items": 3}}, "items"),
        ({"type": "long_running", "payload": {"duration": 3601}}, "duration"),
        ({"type": "long_running", "payload": {"seconds": 1}}, "seconds"),
    ],
)
async def test_invalid_builtin_payload_is_422_naming_the_field(
    autojump_clock: trio.testing.MockClock, payload: dict[str, Any], loc: str
) -> None:
    """A built-in job's bad payload is a 422 at submit, naming the field; no job."""
    async with client_for() as client:
        response = await client.post("/api/v1/jobs", json=payload)
        listed = await (await client.get("/api/v1/jobs")).get_json()
    detail = (await response.get_json())["detail"]
    assert response.status_code == 422
    assert [".".join(map(str, d["loc"])) for d in detail] == [f"body.payload.{loc}"]
    assert listed["jobs"] == []


async def test_four_stuck_jobs_are_refused_at_submit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The issue's reproduction: 4 jobs with step_delay=1e9 hold no worker."""
    async with client_for() as client:
        stuck = {"type": "data_processing", "payload": {"step_delay": 1e9}}
        statuses = [
            (await client.post("/api/v1/jobs", json=stuck)).status_code
            for _ in range(4)
        ]
        quick = {"type": "echo", "payload": {"n": 1}}
        job = await (await client.post("/api/v1/jobs", json=quick)).get_json()
        await trio.sleep(0.1)
        done = await (await client.get(f"/api/v1/jobs/{job['id']}")).get_json()
    assert statuses == [422] * 4
    assert done["status"] == "completed"


async def test_jobs_time_out_after_300_seconds_by_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With default settings a job runs at most 300 s (SERVER_JOB_TIMEOUT)."""
    assert ServerSettings().job_timeout == 300.0
    async with client_for() as client:
        long = {"type": "long_running", "payload": {"duration": 3600}}
        location = (await client.post("/api/v1/jobs", json=long)).headers["Location"]
        await trio.sleep(299.5)
        running = await (await client.get(location)).get_json()
        await trio.sleep(1)
        job = await (await client.get(location)).get_json()
    assert running["status"] == "running"
    assert (job["status"], job["error"]) == ("failed", "timed out after 300s")
    assert job["finished_at"] - job["started_at"] == 300.0


async def test_a_request_id_reused_with_another_body_is_422(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A reused X-Request-ID with another body is a 422; the same body replays."""
    async with client_for() as client:

        async def submit(body: str, key: str = "k1") -> Any:
            return await post_raw(client, body, **{"X-Request-ID": key})

        first = await submit('{"type": "echo", "payload": {"a": 1, "b": 2}}')
        same = await submit('{"payload": {"b": 2, "a": 1}, "type": "echo"}')
        other_payload = await submit('{"type": "echo", "payload": {"a": 2}}')
        other_type = await submit('{"type": "long_running"}')
        data = await submit('{"type": "data_processing"}', "k2")
        spelled = await submit(
            '{"type": "data_processing", "payload": {"items": [], "step_delay": 0.1}}',
            "k2",
        )
        listed = await (await client.get("/api/v1/jobs")).get_json()
    job_id = (await first.get_json())["id"]
    assert first.status_code == 202
    assert (same.status_code, same.headers["Idempotent-Replayed"]) == (202, "true")
    assert (await same.get_json())["id"] == job_id
    assert (spelled.status_code, spelled.headers["Idempotent-Replayed"]) == (
        202,
        "true",
    )
    assert (await spelled.get_json())["id"] == (await data.get_json())["id"]
    for refused in (other_payload, other_type):
        assert refused.status_code == 422
        assert await refused.get_json() == {
            "detail": [
                {
                    "loc": ["header", "X-Request-ID"],
                    "msg": "Idempotency key reused with a different request body: "
                    f"X-Request-ID 'k1' created job {job_id} from another body "
                    "(use a new key for a new job)",
                    "type": "key_reused",
                }
            ]
        }
    assert len(listed["jobs"]) == 2


async def test_job_times_are_the_same_on_every_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two GETs of one job, far apart, return identical timestamps."""
    async with client_for() as client:
        job = await (
            await client.post("/api/v1/jobs", json={"type": "echo"})
        ).get_json()
        await trio.sleep(1)
        first = await (await client.get(f"/api/v1/jobs/{job['id']}")).get_json()
        await trio.sleep(60)
        second = await (await client.get(f"/api/v1/jobs/{job['id']}")).get_json()
        listed = (await (await client.get("/api/v1/jobs")).get_json())["jobs"]
    times = ("created_at", "started_at", "finished_at")
    assert [job[name] for name in times[:1]] == [first[name] for name in times[:1]]
    assert [first[name] for name in times] == [second[name] for name in times]
    assert [listed[0][name] for name in times] == [first[name] for name in times]


@pytest.mark.parametrize(
    "payload",
    [
        '{"x": NaN}',
        '{"x": Infinity}',
        '{"x": -Infinity}',
        '{"x": 1e400}',
        '{"x": [1, {"y": -1e400}]}',
    ],
)
async def test_non_finite_numbers_in_a_body_are_422(
    autojump_clock: trio.testing.MockClock, payload: str
) -> None:
    """NaN, Infinity and numbers that overflow to it are a 422 naming where."""
    async with client_for() as client:
        response = await post_raw(client, f'{{"type": "echo", "payload": {payload}}}')
        listed = await client.get("/api/v1/jobs")
        body = await listed.get_data()
    detail = (await response.get_json())["detail"]
    assert response.status_code == 422
    assert detail[0]["type"] == "finite_number"
    assert detail[0]["loc"][:3] == ["body", "payload", "x"]
    assert json.loads(body, parse_constant=refuse) == {"jobs": [], "next": None}


async def test_jobs_are_listed_a_page_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """GET /api/v1/jobs pages (100 by default); next links serve each job once."""
    async with client_for(job_workers=1) as client:
        ids = []
        for n in range(250):
            job = {"type": "echo", "payload": {"n": n}}
            ids.append(
                (await (await client.post("/api/v1/jobs", json=job)).get_json())["id"]
            )
        await trio.sleep(1)
        first = await (await client.get("/api/v1/jobs")).get_json()
        assert len(first["jobs"]) == 100
        assert first["next"] == "/api/v1/jobs?limit=100&after=100"
        seen, url = [], "/api/v1/jobs?status=completed&limit=70"
        while url is not None:
            page = await (await client.get(url)).get_json()
            seen.extend(job["id"] for job in page["jobs"])
            assert url.startswith("/api/v1/jobs?status=completed&limit=70")
            url = page["next"]
        assert seen == ids
        assert (await client.get("/api/v1/jobs?limit=1001")).status_code == 422
        assert (await client.get("/api/v1/jobs?limit=0")).status_code == 422
        bad_cursor = await client.get("/api/v1/jobs?after=abc")
        assert (await bad_cursor.get_json())["detail"][0]["loc"] == ["query", "after"]
        most = await (await client.get("/api/v1/jobs?limit=1000")).get_json()
        assert (len(most["jobs"]), most["next"]) == (250, None)
        running = await (await client.get("/api/v1/jobs?status=running")).get_json()
        assert running == {"jobs": [], "next": None}
