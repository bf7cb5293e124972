"""Strict and safe HTTP against a real server: content types, Host, token, framing.

Raw sockets where httpx would hide what is pinned (a smuggled second request, the
end of a connection, a Host header httpx would not send); httpx elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import suppress
from typing import Any

import httpx
import pytest
import trio
from structlog.testing import capture_logs

from trio_resilience import ClientConfig, ResilientClient
from trio_resilience.client.errors import AuthenticationError
from trio_resilience.server import ServerSettings, create_app
from trio_resilience.testing import serve_in_background

from .conftest import cli_server
from .test_connections import connect
from .test_server_http import wait_until_msg_in_flight

TOKEN = "t0ken-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUIET = ServerSettings(log_level="ERROR")
AMBIGUOUS = "Content-Length and Transfer-Encoding must not both be sent"


def logged_requests(logs: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """(status, outcome) of each request log line, the /fail/status polls left out."""
    return [
        (e["status"], e["outcome"])
        for e in logs
        if e["event"] == "request" and e["path"] != "/fail/status"
    ]


def route_paths() -> list[tuple[str, frozenset[str]]]:
    """Every route of the app, its placeholders filled in, with its methods."""
    app = create_app(QUIET)
    adapter = app.url_map.bind("localhost")
    paths: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        path = adapter.build(rule.endpoint, dict.fromkeys(rule.arguments, 1))
        paths.setdefault(path, set()).update(rule.methods or ())
    return [(path, frozenset(methods)) for path, methods in sorted(paths.items())]


async def test_options_on_every_route_is_empty_without_a_content_type() -> None:
    """OPTIONS on each route: an empty 200 with Allow and no Content-Type."""
    routes = route_paths()
    assert len(routes) >= 15
    async with serve_in_background(QUIET) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            for path, methods in routes:
                response = await client.options(path)
                assert response.status_code == 200, path
                assert "content-type" not in response.headers, path
                assert response.headers["content-length"] == "0", path
                assert response.content == b"", path
                allowed = {m.strip() for m in response.headers["allow"].split(",")}
                assert allowed == methods, path


async def test_delete_204_has_neither_content_type_nor_length() -> None:
    """The CRUD DELETE 204: no Content-Type, no Content-Length, connection reused."""
    async with serve_in_background(QUIET) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            created = await client.post("/api/v1/items", json={"name": "a", "price": 1})
            item_id = created.json()["id"]
        async with connect(url) as conn:
            await conn.send(
                b"DELETE /api/v1/items/%d HTTP/1.1\r\nHost: localhost\r\n\r\n"
                b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n" % item_id
            )
            # A 204 has no body: its head ends right before the next response.
            data = b""
            with trio.fail_after(5):
                while data.count(b"\r\n\r\n") < 2:
                    chunk = await conn.stream.receive_some()
                    assert chunk, f"EOF after {data!r}"
                    data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    names = {line.partition(":")[0].strip().lower() for line in lines}
    assert status_line.split()[1] == "204"
    assert "content-type" not in names
    assert "content-length" not in names
    assert rest.startswith(b"HTTP/1.1 200")  # the same connection carried on
    assert b"content-type: application/json" in rest.lower()


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        (None, 415),
        ("application/json", 202),
        ("application/json; charset=utf-8", 202),
        ("application/vnd.test+json", 202),
    ],
)
async def test_job_bodies_must_be_declared_json(
    content_type: str | None, status: int
) -> None:
    """A job body not declared JSON is a 415 and submits nothing."""
    body = b'{"type": "echo", "payload": {}}'
    headers = {"Content-Type": content_type} if content_type else {}
    async with serve_in_background(QUIET) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.post("/api/v1/jobs", content=body, headers=headers)
            jobs = (await client.get("/api/v1/jobs")).json()["jobs"]
    assert response.status_code == status
    if status == 415:
        assert response.json() == {"detail": "Content-Type must be application/json"}
        assert jobs == []
    else:
        assert len(jobs) == 1


async def test_crud_writes_need_json_and_bodiless_posts_do_not() -> None:
    """text/plain CRUD POST and PUT are 415; a bodiless control POST needs no type."""
    async with serve_in_background(QUIET) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            plain = {"Content-Type": "text/plain"}
            body = b'{"name": "pen", "price": 1}'
            post = await client.post("/api/v1/items", content=body, headers=plain)
            untyped = await client.post("/api/v1/users", content=body)
            created = await client.post("/api/v1/items", json={"name": "a", "price": 1})
            item = f"/api/v1/items/{created.json()['id']}"
            put = await client.put(item, content=body, headers=plain)
            reset = await client.post("/fail/reset")
            after = (await client.get(item)).json()
    assert [post.status_code, untyped.status_code, put.status_code] == [415] * 3
    assert created.status_code == 201
    assert after["name"] == "a"  # the refused PUT changed nothing
    assert reset.status_code == 200


async def test_a_chunked_json_body_is_accepted() -> None:
    """A chunked JSON body (no Content-Length) is a normal request."""
    async with serve_in_background(QUIET) as url, connect(url) as conn:
        body = b'{"name": "pen", "price": 1}'
        await conn.send(
            b"POST /api/v1/items HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        with trio.fail_after(5):
            response = await conn.response()
    assert response.status == 201


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (b"evil.example", 400),
        (b"evil.example:8000", 400),
        (b"127.0.0.1.evil.example", 400),
        (b"localhost", 200),
        (b"localhost:1234", 200),
        (b"127.0.0.1:8000", 200),
        (b"127.9.9.9", 200),
        (b"[::1]:8000", 200),
    ],
)
async def test_loopback_server_accepts_only_loopback_hosts(
    host: bytes, status: int
) -> None:
    """Bound to 127.0.0.1, a foreign Host is a 400 (DNS rebinding); loopback passes."""
    async with serve_in_background(QUIET) as url, connect(url) as conn:
        await conn.send(b"GET /health HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
        with trio.fail_after(5):
            response = await conn.response()
    assert response.status == status
    if status == 400:
        assert json.loads(response.body) == {"detail": "Host not allowed"}
        assert response.headers["content-type"] == "application/json"


async def test_allowed_hosts_extend_the_loopback_names() -> None:
    """SERVER_ALLOWED_HOSTS names more hosts; others are still refused."""
    settings = ServerSettings(log_level="ERROR", allowed_hosts=("box.test",))
    async with serve_in_background(settings) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            listed = await client.get("/health", headers={"Host": "box.test:80"})
            other = await client.get("/health", headers={"Host": "evil.example"})
            local = await client.get("/health")
    assert (listed.status_code, other.status_code, local.status_code) == (
        200,
        400,
        200,
    )


async def test_control_token_guards_the_control_routes() -> None:
    """With a token, control routes need Bearer <token>; GETs and /health do not."""
    settings = ServerSettings(log_level="ERROR", control_token=TOKEN)
    async with serve_in_background(settings) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            job = {"type": "echo", "payload": {}}
            refused = [
                await client.post("/fail/count/1"),
                await client.post("/fail/duration/5"),
                await client.post("/fail/reset"),
                await client.post("/api/v1/jobs", json=job),
                await client.delete("/api/v1/jobs/x"),
                await client.post("/api/v1/items", json={"name": "a", "price": 1}),
                await client.put("/api/v1/items/1", json={"name": "a", "price": 1}),
                await client.delete("/api/v1/users/1"),
                await client.post("/fail/count/1", headers={"Authorization": "nope"}),
            ]
            opened = [
                await client.get("/health"),
                await client.get("/fail/status"),
                await client.get("/api/v1/jobs"),
                await client.get("/api/v1/items"),
                await client.options("/fail/count/1"),
            ]
            allowed = await client.post("/fail/count/1", headers=AUTH)
            status = (await client.get("/fail/status")).json()
    for response in refused:
        assert response.status_code == 401, response.request.url
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "detail" in response.json()
    assert [r.status_code for r in opened] == [200] * 5
    assert allowed.status_code == 200
    assert status["count_remaining"] == 1  # only the authorised POST took effect


async def test_cors_preflight_needs_no_token() -> None:
    """A CORS preflight (OPTIONS) passes without the token; the real call needs it."""
    settings = ServerSettings(
        log_level="ERROR",
        control_token=TOKEN,
        cors_enabled=True,
        cors_origins=("http://ui.test",),
    )
    preflight = {
        "Origin": "http://ui.test",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    async with serve_in_background(settings) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            answer = await client.options("/fail/reset", headers=preflight)
            call = await client.post(
                "/fail/reset", headers={"Origin": "http://ui.test", **AUTH}
            )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == "http://ui.test"
    assert "content-type" not in answer.headers
    assert call.status_code == 200


async def test_the_resilient_client_works_with_a_token() -> None:
    """ResilientClient: 401 without the token (AuthenticationError), 200 with it."""
    settings = ServerSettings(log_level="ERROR", control_token=TOKEN)
    async with serve_in_background(settings) as url:
        async with ResilientClient(ClientConfig(base_url=url)) as client:
            with pytest.raises(AuthenticationError):
                await client.post("/fail/count/1")
            response = await client.post("/fail/count/1", headers=AUTH)
            assert response.status_code == 200
            status = (await client.get("/fail/status")).json()
            assert status["count_remaining"] == 1


async def test_refusals_are_logged_as_refused_and_never_take_a_slot() -> None:
    """With the only slot taken and no queueing, refusals still answer (not 503)
    and each is logged once with outcome refused."""
    settings = ServerSettings(max_concurrency=1, queue_timeout=0, control_token=TOKEN)
    async with serve_in_background(settings) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(client.get, "/msg?delay=2000")
                await wait_until_msg_in_flight(url)
                with capture_logs() as logs:
                    host = await client.get("/msg", headers={"Host": "evil.example"})
                    token = await client.delete("/api/v1/items/1")
                    plain = await client.post(
                        "/api/v1/items",
                        content=b"{}",
                        headers={"Content-Type": "text/plain", **AUTH},
                    )
                    shed = await client.get("/msg")  # not refused: no slot, 503
                    # A request is logged just after its response went out.
                    with trio.fail_after(5):
                        while True:
                            if len(lines := logged_requests(logs)) >= 4:
                                break
                            await trio.sleep(0.01)
    assert [r.status_code for r in (host, token, plain, shed)] == [400, 401, 415, 503]
    assert lines == [
        (400, "refused"),
        (401, "refused"),
        (415, "refused"),
        (503, "shed"),
    ]


async def test_content_length_with_transfer_encoding_is_not_smuggled() -> None:
    """CL + TE: 400 with Connection: close, then EOF; the request behind it is never
    answered nor run (20 connections: the answer is never lost either)."""
    smuggled = b"POST /fail/count/7 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    request = (
        b"POST /fail/reset HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n%s"
        % (5 + len(smuggled), smuggled)
    )
    async with serve_in_background(QUIET) as url:
        for _ in range(20):
            async with connect(url) as conn:
                await conn.send(request)
                with trio.fail_after(5):
                    response = await conn.response()
                assert response.status == 400
                assert response.closes
                assert json.loads(response.body) == {"detail": AMBIGUOUS}
                with suppress(trio.BrokenResourceError):  # the server may have closed
                    await conn.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
                with trio.fail_after(5):
                    await conn.wait_eof()  # no second response, ever
        async with httpx.AsyncClient(base_url=url) as client:
            status = (await client.get("/fail/status")).json()
    assert status["count_remaining"] == 0  # the smuggled POST never ran


async def test_a_refusal_after_the_whole_body_keeps_the_connection() -> None:
    """A refused request whose body arrived is answered without Connection: close,
    and its connection serves the next request."""
    body = b'{"type": "echo"}'
    async with serve_in_background(QUIET) as url, connect(url) as conn:
        await conn.send(
            b"POST /api/v1/jobs HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n" % (len(body), body)
        )
        with trio.fail_after(5):
            refused = await conn.response()
            health = await conn.response()
    assert refused.status == 415
    assert not refused.closes
    assert health.status == 200


async def test_the_token_never_reaches_logs_or_config_info() -> None:
    """SERVER_CONTROL_TOKEN is masked in the start-up line and in config-info."""
    env = {"SERVER_CONTROL_TOKEN": TOKEN}
    async with cli_server("--log-format", "json", env=env) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            assert (await client.post("/fail/reset")).status_code == 401
            assert (await client.post("/fail/reset", headers=AUTH)).status_code == 200
        server.terminate()
        assert await server.process.wait() == 0
    (starting,) = [e for e in server.json_lines() if e["event"] == "server starting"]
    assert starting["settings"]["control_token"] == "**********"
    assert not [line for line in server.lines if TOKEN in line]
    info = await trio.run_process(
        [sys.executable, "-m", "trio_resilience", "config-info"],
        env={**os.environ, **env},
        capture_stdout=True,
        capture_stderr=True,
    )
    assert TOKEN not in info.stdout.decode() + info.stderr.decode()
    assert json.loads(info.stdout)["control_token"] == "**********"


def test_config_info_shows_no_token_when_unset() -> None:
    """Without a token config-info says null, and allowed_hosts is a list."""
    env = {k: v for k, v in os.environ.items() if k != "SERVER_CONTROL_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "trio_resilience", "config-info"],
        env={**env, "SERVER_ALLOWED_HOSTS": "box.test,*"},
        capture_output=True,
        text=True,
        check=True,
    )
    settings = json.loads(result.stdout)
    assert settings["control_token"] is None
    assert settings["allowed_hosts"] == ["box.test", "*"]
