"""The app end to end through Quart's test client, on virtual time.

No sockets here (tests/integration covers the real server): these pin the exact
timing of delays, waves under the concurrency limit, timeouts and saturation.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from quart.testing import QuartClient
from structlog.testing import capture_logs

from trio_resilience.server import ServerSettings, create_app


@asynccontextmanager
async def client_for(**settings: Any) -> AsyncIterator[QuartClient]:
    app = create_app(ServerSettings(**settings))
    async with app.test_app():
        yield app.test_client()


async def get_json(client: QuartClient, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = await client.get(path, **kwargs)
    return response.status_code, await response.get_json()


async def test_msg_returns_a_new_uuid_each_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Without a request id every call gets a fresh UUID4."""
    async with client_for() as client:
        status, first = await get_json(client, "/msg")
        _, second = await get_json(client, "/msg")
    assert status == 200
    assert uuid.UUID(first["message_id"]).version == 4
    assert first != second


async def test_delay_is_exact(autojump_clock: trio.testing.MockClock) -> None:
    """delay is in milliseconds."""
    async with client_for() as client:
        await client.get("/msg?delay=1500")
    assert trio.current_time() == 1.5


@pytest.mark.parametrize("delay", ["-1", "30001", "abc", "1.5", "", "1e3"])
async def test_bad_delay_is_422_with_a_reason(
    autojump_clock: trio.testing.MockClock, delay: str
) -> None:
    """delay must be an integer from 0 to 30000."""
    async with client_for() as client:
        status, body = await get_json(client, f"/msg?delay={delay}")
    assert status == 422
    assert body["detail"][0]["loc"] == ["query", "delay"]
    assert body["detail"][0]["msg"]


async def test_delay_limits_are_inclusive(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """0 and 30000 are both accepted."""
    async with client_for(request_timeout=60) as client:
        assert (await client.get("/msg?delay=0")).status_code == 200
        assert (await client.get("/msg?delay=30000")).status_code == 200
    assert trio.current_time() == 30.0


async def test_idempotent_replay(autojump_clock: trio.testing.MockClock) -> None:
    """The same X-Request-ID gets the same answer, marked as a replay, at once."""
    async with client_for() as client:
        first = await client.get("/msg?delay=1000", headers={"X-Request-ID": "r-1"})
        second = await client.get("/msg?delay=1000", headers={"X-Request-ID": "r-1"})
        other = await client.get("/msg", headers={"X-Request-ID": "r-2"})
    assert (await first.get_json()) == (await second.get_json())
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    assert (await other.get_json()) != (await first.get_json())
    assert trio.current_time() == 1.0  # the replay did not wait again


async def test_concurrent_duplicates_share_one_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Single flight: concurrent requests with one id get one UUID, never two."""
    answers: list[str] = []
    async with client_for() as client:

        async def call() -> None:
            _, body = await get_json(
                client, "/msg?delay=1000", headers={"X-Request-ID": "same"}
            )
            answers.append(body["message_id"])

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(call)
    assert len(answers) == 10
    assert len(set(answers)) == 1
    assert trio.current_time() == 1.0


async def test_cached_answer_expires_after_ttl(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After cache_ttl_seconds the id gets a new answer."""
    async with client_for(cache_ttl_seconds=10) as client:
        _, first = await get_json(client, "/msg", headers={"X-Request-ID": "t"})
        await trio.sleep(10)
        _, second = await get_json(client, "/msg", headers={"X-Request-ID": "t"})
    assert first != second


@pytest.mark.parametrize(
    ("request_id", "reason"),
    [
        ("x" * 257, "X-Request-ID must be at most 256 characters"),
        ("   ", "X-Request-ID must not be empty"),
    ],
)
async def test_bad_request_id_is_400(
    autojump_clock: trio.testing.MockClock, request_id: str, reason: str
) -> None:
    """Request ids must be 1 to 256 characters."""
    async with client_for() as client:
        status, body = await get_json(
            client, "/msg", headers={"X-Request-ID": request_id}
        )
        ok, _ = await get_json(client, "/msg", headers={"X-Request-ID": "x" * 256})
    assert (status, body) == (400, {"detail": reason})
    assert ok == 200


async def test_failure_wins_over_a_cached_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The specification flow's precedence check, in process."""
    async with client_for() as client:
        _, cached = await get_json(client, "/msg", headers={"X-Request-ID": "p"})
        await client.post("/fail/count/1")
        status, body = await get_json(client, "/msg", headers={"X-Request-ID": "p"})
        assert (status, body) == (500, {"detail": "Induced server failure"})
        status, again = await get_json(client, "/msg", headers={"X-Request-ID": "p"})
    assert (status, again) == (200, cached)


async def test_duration_failures_over_http(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """POST /fail/duration/{s} fails /msg for exactly s seconds."""
    async with client_for() as client:
        response = await client.post("/fail/duration/2.5")
        assert (await response.get_json())["duration_remaining_seconds"] == 2.5
        assert (await client.get("/msg")).status_code == 500
        await trio.sleep(2.5)
        assert (await client.get("/msg")).status_code == 200
        _, status = await get_json(client, "/fail/status")
    assert status == {
        "count_remaining": 0,
        "duration_remaining_seconds": 0.0,
        "failing": False,
        "requests_seen": 2,
        "failures_injected": 1,
    }


async def test_reset_over_http(autojump_clock: trio.testing.MockClock) -> None:
    """POST /fail/reset ends both modes at once."""
    async with client_for() as client:
        await client.post("/fail/count/5")
        await client.post("/fail/duration/60")
        reset = await client.post("/fail/reset")
        assert (await reset.get_json())["failing"] is False
        assert (await client.get("/msg")).status_code == 200


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/fail/count/-1", "count"),
        ("/fail/count/abc", "count"),
        ("/fail/count/1.5", "count"),
        ("/fail/count/1000001", "count"),
        ("/fail/duration/-1", "seconds"),
        ("/fail/duration/abc", "seconds"),
        ("/fail/duration/86401", "seconds"),
        ("/fail/duration/inf", "seconds"),
        ("/fail/duration/nan", "seconds"),
    ],
)
async def test_bad_failure_settings_are_422(
    autojump_clock: trio.testing.MockClock, path: str, field: str
) -> None:
    """Negative, non-numeric or absurd failure settings are rejected."""
    async with client_for() as client:
        response = await client.post(path)
        body = await response.get_json()
        _, status = await get_json(client, "/fail/status")
    assert response.status_code == 422
    assert body["detail"][0]["loc"] == ["path", field]
    assert status["failing"] is False


async def test_concurrency_limit_runs_in_waves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """6 one-second requests with max_concurrency=2 finish in 3 waves."""
    finished: list[float] = []
    async with client_for(max_concurrency=2) as client:

        async def call() -> None:
            response = await client.get("/msg?delay=1000")
            assert response.status_code == 200
            finished.append(trio.current_time())

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(call)
    assert finished == [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]


async def test_timeout_is_504(autojump_clock: trio.testing.MockClock) -> None:
    """A request still running at request_timeout gets 504 at exactly that time."""
    async with client_for(request_timeout=2) as client:
        status, body = await get_json(client, "/msg?delay=5000")
    assert (status, body) == (504, {"detail": "Request timed out"})
    assert trio.current_time() == 2.0


async def test_saturation_is_503_with_retry_after(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request that never gets a slot before its deadline gets 503 + Retry-After;
    the one holding the slot past the deadline gets 504."""
    results: dict[str, Any] = {}
    async with client_for(max_concurrency=1, request_timeout=3) as client:

        async def call(name: str, delay_ms: int) -> None:
            response = await client.get(f"/msg?delay={delay_ms}")
            results[name] = (
                response.status_code,
                await response.get_json(),
                response.headers.get("Retry-After"),
                trio.current_time(),
            )

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "holder", 5000)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(call, "waiter", 0)
    assert results == {
        "holder": (504, {"detail": "Request timed out"}, None, 3.0),
        "waiter": (503, {"detail": "Server is at capacity"}, "1", 3.0),
    }


async def test_control_paths_bypass_the_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Health and failure control answer at once while every slot is taken."""
    async with client_for(max_concurrency=1) as client, trio.open_nursery() as nursery:
        nursery.start_soon(client.get, "/msg?delay=5000")
        await trio.sleep(1)
        assert (await client.get("/health")).status_code == 200
        assert (await client.post("/fail/reset")).status_code == 200
        assert (await client.get("/fail/status")).status_code == 200
        assert trio.current_time() == 1.0


async def test_health_reports_uptime(autojump_clock: trio.testing.MockClock) -> None:
    """uptime_seconds counts from when the app started serving."""
    async with client_for() as client:
        await trio.sleep(42)
        status, body = await get_json(client, "/health")
    assert (status, body) == (200, {"status": "ok", "uptime_seconds": 42.0})


async def test_errors_are_json(autojump_clock: trio.testing.MockClock) -> None:
    """Unknown paths and wrong methods answer JSON, not HTML."""
    async with client_for() as client:
        missing = await client.get("/nope")
        wrong = await client.post("/msg")
    assert (missing.status_code, await missing.get_json()) == (
        404,
        {"detail": "Not Found"},
    )
    assert wrong.status_code == 405
    assert await wrong.get_json() == {"detail": "Method Not Allowed"}
    assert "GET" in wrong.headers["Allow"]


async def test_request_id_and_process_time_headers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Responses echo X-Request-ID (given or generated) and carry X-Process-Time."""
    async with client_for() as client:
        given = await client.get("/msg?delay=250", headers={"X-Request-ID": "abc"})
        generated = await client.get("/health")
    assert given.headers["X-Request-ID"] == "abc"
    assert float(given.headers["X-Process-Time"]) == 0.25
    assert len(generated.headers["X-Request-ID"]) == 32


async def test_one_log_line_per_request(autojump_clock: trio.testing.MockClock) -> None:
    """Each request logs method, path, status, outcome, duration_ms and request id."""
    async with client_for() as client:
        with capture_logs() as logs:
            await client.get("/msg?delay=125", headers={"X-Request-ID": "log-me"})
            await client.get("/nope")
    requests = [entry for entry in logs if entry["event"] == "request"]
    assert requests == [
        {
            "event": "request",
            "log_level": "info",
            "logger": "trio_resilience.server",
            "method": "GET",
            "path": "/msg",
            "status": 200,
            "outcome": "ok",
            "duration_ms": 125.0,
            "request_id": "log-me",
        },
        {
            "event": "request",
            "log_level": "info",
            "logger": "trio_resilience.server",
            "method": "GET",
            "path": "/nope",
            "status": 404,
            "outcome": "ok",
            "duration_ms": 0.0,
            "request_id": requests[1]["request_id"],
        },
    ]


async def test_log_lines_name_the_outcome(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The request line's outcome says what ended it: timeout (504), shed (503) or
    error (500); a complete response, whatever its status, is ok."""
    app = create_app(ServerSettings(request_timeout=1, max_concurrency=1))

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("bug")

    async with app.test_app():
        client = app.test_client()
        with capture_logs() as logs:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.get, "/msg?delay=5000")
                await trio.testing.wait_all_tasks_blocked()
                await client.get("/msg")  # no slot within the request's 1 s
            await client.get("/boom")
            await client.post("/fail/count/1")
            await client.get("/msg")
    lines = [(e["path"], e["status"], e["outcome"]) for e in logs if "outcome" in e]
    assert lines == [
        ("/msg", 503, "shed"),
        ("/msg", 504, "timeout"),
        ("/boom", 500, "error"),
        ("/fail/count/1", 200, "ok"),
        ("/msg", 500, "ok"),
    ]


@pytest.mark.parametrize(("http_version", "closes"), [("1.1", True), ("2", False)])
async def test_answer_before_the_body_closes_http1_connections(
    autojump_clock: trio.testing.MockClock, http_version: str, closes: bool
) -> None:
    """A response sent before the request body arrived carries Connection: close
    over HTTP/1 (HTTP/2 has no such header and needs none)."""
    app = create_app()
    scope = {
        "type": "http",
        "http_version": http_version,
        "method": "PATCH",
        "scheme": "http",
        "path": "/api/v1/items",
        "raw_path": b"/api/v1/items",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"localhost"),
            (b"content-type", b"application/json"),
            (b"content-length", b"2"),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "extensions": {},
        "state": {},
    }
    sent: list[dict[str, Any]] = []

    async def body_never_comes() -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with app.test_app():
        await app(scope, body_never_comes, send)  # type: ignore[arg-type]
    assert sent[0]["status"] == 405
    assert ((b"connection", b"close") in sent[0]["headers"]) is closes


async def test_every_response_closes_its_connection_while_stopping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Once the server is shutting down, responses carry Connection: close."""
    app = create_app()
    async with app.test_app():
        client = app.test_client()
        assert "Connection" not in (await client.get("/health")).headers
        app.state.shutting_down = True
        assert (await client.get("/health")).headers["Connection"] == "close"
        assert (await client.get("/msg")).headers["Connection"] == "close"


async def test_unexpected_errors_are_a_json_500_and_logged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A bug in a handler answers a generic JSON 500, never a traceback."""
    app = create_app()

    @app.get("/boom")
    async def boom() -> str:
        raise RuntimeError("secret internals")

    async with app.test_app():
        with capture_logs() as logs:
            response = await app.test_client().get("/boom")
        body = await response.get_data(as_text=True)
    assert response.status_code == 500
    assert body == '{"detail":"Internal Server Error"}\n'
    assert "secret" not in body
    assert any(entry["event"] == "unhandled error" for entry in logs)


async def test_openapi_document(autojump_clock: trio.testing.MockClock) -> None:
    """/openapi.json describes every route with its parameters and responses."""
    async with client_for() as client:
        status, spec = await get_json(client, "/openapi.json")
        docs = await client.get("/docs")
    assert status == 200
    assert docs.status_code == 200
    paths = spec["paths"]
    for path in (
        "/msg",
        "/health",
        "/fail/count/{count}",
        "/fail/duration/{seconds}",
        "/fail/reset",
        "/fail/status",
    ):
        assert path in paths, path
    msg = paths["/msg"]["get"]
    (delay,) = [p for p in msg["parameters"] if p["in"] == "query"]
    assert (delay["name"], delay["schema"]["maximum"]) == ("delay", 30000)
    assert {"200", "400", "500"} <= set(msg["responses"])


async def test_docs_can_be_disabled(autojump_clock: trio.testing.MockClock) -> None:
    """enable_docs=False removes /openapi.json and /docs."""
    async with client_for(enable_docs=False) as client:
        assert (await client.get("/openapi.json")).status_code == 404
        assert (await client.get("/docs")).status_code == 404


async def test_cors_when_enabled(autojump_clock: trio.testing.MockClock) -> None:
    """With CORS on, configured origins are allowed and others are not."""
    async with client_for(cors_enabled=True, cors_origins=("http://ok.test",)) as c:
        allowed = await c.get("/health", headers={"Origin": "http://ok.test"})
        denied = await c.get("/health", headers={"Origin": "http://evil.test"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://ok.test"
    assert "Access-Control-Allow-Origin" not in denied.headers


async def test_no_cors_by_default(autojump_clock: trio.testing.MockClock) -> None:
    """CORS headers are absent unless enabled."""
    async with client_for() as client:
        response = await client.get("/health", headers={"Origin": "http://ok.test"})
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_queue_timeout_sheds_load_early(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With queue_timeout, a request waits at most that long for a slot, then 503."""
    results: list[tuple[str, int, float]] = []
    async with client_for(max_concurrency=1, queue_timeout=0.5) as client:

        async def call(name: str, delay_ms: int) -> None:
            response = await client.get(f"/msg?delay={delay_ms}")
            results.append((name, response.status_code, trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "holder", 2000)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(call, "shed", 0)
        await call("after", 0)  # a free slot is taken at once
    assert results == [("shed", 503, 0.5), ("holder", 200, 2.0), ("after", 200, 2.0)]


async def test_queue_timeout_zero_never_queues(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """queue_timeout=0 rejects at once when full, and serves at once when not."""
    async with client_for(max_concurrency=1, queue_timeout=0) as client:
        assert (await client.get("/msg")).status_code == 200
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.get, "/msg?delay=1000")
            await trio.testing.wait_all_tasks_blocked()
            response = await client.get("/msg")
            assert response.status_code == 503
            assert trio.current_time() == 0.0
