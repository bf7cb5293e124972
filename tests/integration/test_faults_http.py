"""Fault rules against a real server, seen from httpx and from raw sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import urllib3
from structlog.testing import capture_logs

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background

from .conftest import cli_server

INDUCED = {"detail": "Induced server failure"}


@asynccontextmanager
async def server(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A real server and a client for it (no retries, a short timeout)."""
    defaults: dict[str, Any] = {"enable_docs": False, "log_level": "ERROR"}
    async with (
        serve_in_background(ServerSettings(**(defaults | settings))) as url,
        httpx.AsyncClient(base_url=url, timeout=5) as client,
    ):
        yield client


async def add(client: httpx.AsyncClient, **rule: Any) -> dict[str, Any]:
    response = await client.post("/faults", json=rule)
    assert response.status_code == 201, response.text
    stored: dict[str, Any] = response.json()
    return stored


async def journal(client: httpx.AsyncClient, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/requests", params=query)
    entries: list[dict[str, Any]] = response.json()["requests"]
    return entries


async def finished(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    """Poll until the newest journal entry is a request to ``path``; return it."""
    with trio.fail_after(5):
        while True:
            entries = await journal(client, limit="1")
            if entries and entries[0]["path"] == path:
                return entries[0]
            await trio.sleep(0.01)


async def first_rule_fired(client: httpx.AsyncClient) -> None:
    """Poll until the oldest rule has fired (its request is in the fault layer)."""
    with trio.fail_after(5):
        while True:
            rules = (await client.get("/faults")).json()["rules"]
            if rules[0]["fired"]:
                return
            await trio.sleep(0.01)


async def test_status_with_retry_after_and_a_body() -> None:
    async with server() as client:
        rule = await add(
            client,
            match={"method": "GET", "path": "/msg"},
            action={"status": 503, "retry_after": 3},
            times=1,
        )
        assert rule["remaining"] == 1
        failed = await client.get("/msg")
        assert failed.status_code == 503
        assert failed.headers["retry-after"] == "3"
        assert failed.headers["content-type"] == "application/json"
        assert failed.json() == INDUCED
        assert (await client.get("/msg")).status_code == 200
        await add(
            client,
            match={"path": "/msg"},
            action={"status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"},
        )
        limited = await client.get("/msg")
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "Wed, 21 Oct 2015 07:28:00 GMT"
        await client.delete("/faults")
        await add(client, action={"status": 502, "body": {"error": "bad gateway"}})
        assert (await client.get("/msg")).json() == {"error": "bad gateway"}
        await client.delete("/faults")
        await add(client, action={"status": 204})
        empty = await client.get("/msg")
        assert (empty.status_code, empty.content) == (204, b"")
        assert "content-type" not in empty.headers


async def test_every_route_can_fail_but_control_routes_never() -> None:
    """A rule for any path fails the job and CRUD APIs; /health, /faults,
    /requests and /fail stay reachable."""
    async with server() as client:
        rule = await add(client, match={"path": "/*"}, action={"status": 500})
        item = await client.post("/api/v1/items", json={"name": "a", "price": 1})
        job = await client.post("/api/v1/jobs", json={"type": "echo", "payload": {}})
        assert (item.status_code, job.status_code) == (500, 500)
        for path in ("/health", "/faults", "/requests", "/fail/status"):
            assert (await client.get(path)).status_code == 200, path
        entries = await journal(client)
        assert [e["fault"] for e in entries[1:3]] == [rule["id"], rule["id"]]
        assert all(e["fault"] is None for e in entries[3:])
        await client.delete("/faults")
        assert (await client.get("/api/v1/items")).json()["items"] == []


async def test_a_failure_wins_over_a_cached_answer() -> None:
    async with server() as client:
        first = await client.get("/msg", headers={"X-Request-ID": "k"})
        await add(client, match={"path": "/msg"}, action={"status": 503}, times=1)
        assert (
            await client.get("/msg", headers={"X-Request-ID": "k"})
        ).status_code == 503
        replay = await client.get("/msg", headers={"X-Request-ID": "k"})
        assert replay.json() == first.json()


async def test_reset_is_a_connection_reset() -> None:
    async with server() as client:
        await add(client, match={"path": "/msg"}, action={"reset": True}, times=1)
        with pytest.raises(httpx.ReadError):
            await client.get("/msg")
        assert (await client.get("/msg")).status_code == 200
        entry = (await journal(client))[-2]
        assert (entry["status"], entry["outcome"]) == (None, "reset")


async def test_reset_seen_on_a_raw_socket() -> None:
    """The socket read fails with ECONNRESET: a RST, not an orderly close."""
    async with server() as client:
        await add(client, match={"path": "/msg"}, action={"reset": True})
        host, port = urlsplit(str(client.base_url)).netloc.split(":")
        sock = trio.socket.socket()
        await sock.connect((host, int(port)))
        await sock.send(b"GET /msg HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            with trio.fail_after(5):
                await sock.recv(1024)
        sock.close()


async def test_close_is_a_disconnect_without_response() -> None:
    async with server() as client:
        await add(client, match={"method": "POST"}, action={"close": True}, times=1)
        with pytest.raises(
            httpx.RemoteProtocolError, match="without sending a response"
        ):
            await client.post("/api/v1/items", json={"name": "a", "price": 1})
        entry = (await journal(client))[-1]
        assert (entry["status"], entry["outcome"]) == (None, "closed")
        host, port = urlsplit(str(client.base_url)).netloc.split(":")
        await add(client, match={"path": "/msg"}, action={"close": True})
        with trio.socket.socket() as sock:
            await sock.connect((host, int(port)))
            await sock.send(b"GET /msg HTTP/1.1\r\nHost: localhost\r\n\r\n")
            with trio.fail_after(5):
                assert await sock.recv(1024) == b""  # EOF, in order


async def test_truncate_promises_more_than_it_sends() -> None:
    async with server() as client:
        await add(client, match={"path": "/msg"}, action={"truncate": True})
        with pytest.raises(
            httpx.RemoteProtocolError, match="without sending complete message body"
        ):
            await client.get("/msg")
        host, port = urlsplit(str(client.base_url)).netloc.split(":")
        with trio.socket.socket() as sock:
            await sock.connect((host, int(port)))
            await sock.send(b"GET /msg HTTP/1.1\r\nHost: localhost\r\n\r\n")
            received = b""
            with trio.fail_after(5):
                while chunk := await sock.recv(65536):
                    received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        lines = head.decode().lower().split("\r\n")
        length = int(next(x for x in lines if x.startswith("content-length:"))[15:])
        assert len(body) == length // 2
        entry = (await journal(client))[-1]
        assert (entry["status"], entry["outcome"]) == (200, "truncated")


async def test_hang_until_the_client_gives_up() -> None:
    async with server() as client:
        await add(client, match={"path": "/msg"}, action={"hang": True}, times=1)
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/msg", timeout=0.3)
        entry = await finished(client, "/msg")
        assert (entry["status"], entry["outcome"]) == (499, "client_closed")


async def test_hang_until_the_request_timeout() -> None:
    async with server(request_timeout=0.3) as client:
        await add(client, match={"path": "/msg"}, action={"hang": True})
        timed_out = await client.get("/msg")
        assert timed_out.status_code == 504


async def test_delay_then_the_route_answers() -> None:
    async with server() as client:
        await add(
            client, match={"path": "/msg"}, action={"delay_ms": 200, "jitter_ms": 50}
        )
        response = await client.get("/msg")
        assert response.status_code == 200
        assert "message_id" in response.json()
        entry = (await journal(client))[-1]
        assert entry["duration_ms"] >= 200


async def test_drip_sends_the_body_slowly() -> None:
    async with server() as client:
        await add(client, match={"path": "/msg"}, action={"drip_ms": 400})
        start = trio.current_time()
        arrivals: list[float] = []
        async with client.stream("GET", "/msg") as response:
            headers_at = trio.current_time() - start
            length = int(response.headers["content-length"])
            body = b""
            async for chunk in response.aiter_raw():
                body += chunk
                arrivals.append(trio.current_time() - start)
        assert response.status_code == 200
        assert len(body) == length
        assert headers_at < 0.4
        assert arrivals[-1] >= 0.4
        assert len(arrivals) > 5  # many small pieces, not one


async def test_drip_stops_when_the_client_leaves() -> None:
    async with server() as client:
        await add(client, match={"path": "/msg"}, action={"drip_ms": 60_000})
        async with client.stream("GET", "/msg") as response:
            assert response.status_code == 200
        entry = await finished(client, "/msg")
        assert entry["outcome"] == "client_closed"
        assert entry["duration_ms"] < 30_000


async def test_a_drip_cut_by_the_request_timeout_ends_the_connection() -> None:
    """The status is out already: the body stays unfinished and the connection
    closes, so the client sees a short body as short (not as complete)."""
    with capture_logs() as logged:
        async with server(request_timeout=0.3) as client:
            await add(client, match={"path": "/msg"}, action={"drip_ms": 5_000})
            with pytest.raises(httpx.RemoteProtocolError, match="complete message"):
                await client.get("/msg")
            entry = await finished(client, "/msg")
            assert (entry["status"], entry["outcome"]) == (200, "timeout")
            await client.delete("/faults")
            assert (await client.get("/msg")).status_code == 200
    assert [e["event"] for e in logged if e["log_level"] == "error"] == []


async def test_commit_then_fail_with_an_idempotency_key_creates_one_item() -> None:
    async with server() as client:
        await add(
            client,
            match={"method": "POST", "path": "/api/v1/items"},
            action={"commit_then_fail": 503},
            times=1,
        )
        item = {"name": "widget", "price": 3}
        key = {"X-Request-ID": "create-widget"}
        failed = await client.post("/api/v1/items", json=item, headers=key)
        assert (failed.status_code, failed.json()) == (503, INDUCED)
        retried = await client.post("/api/v1/items", json=item, headers=key)
        assert retried.status_code == 201
        assert retried.headers["idempotent-replayed"] == "true"
        items = (await client.get("/api/v1/items")).json()["items"]
        assert [i["name"] for i in items] == ["widget"]


async def test_a_seed_gives_the_same_failures_twice() -> None:
    async with server() as client:

        async def statuses() -> list[int]:
            await client.delete("/faults")
            await add(client, action={"status": 500}, probability=0.5, seed=11)
            return [(await client.get("/msg")).status_code for _ in range(16)]

        first = await statuses()
        assert first == await statuses()
        assert set(first) == {200, 500}


async def test_scopes_running_at_once_do_not_see_each_other() -> None:
    async with server() as client:
        await add(client, match={"scope": "a"}, action={"status": 500})
        await add(client, match={"scope": "b"}, action={"status": 502})
        results: dict[str, list[int]] = {"a": [], "b": []}

        async def run(scope: str) -> None:
            for _ in range(5):
                response = await client.get("/msg", headers={"X-Fault-Scope": scope})
                results[scope].append(response.status_code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "a")
            nursery.start_soon(run, "b")
        assert results == {"a": [500] * 5, "b": [502] * 5}
        assert (await client.get("/msg")).status_code == 200
        assert {e["status"] for e in await journal(client, scope="a")} == {500}
        a_rules = (await client.get("/faults", params={"scope": "a"})).json()["rules"]
        assert [r["fired"] for r in a_rules] == [5]
        await client.delete("/faults", params={"scope": "a"})
        remaining = (await client.get("/faults")).json()["rules"]
        assert [r["match"]["scope"] for r in remaining] == ["b"]


async def test_rules_can_be_read_and_deleted_one_by_one() -> None:
    async with server() as client:
        rule = await add(client, match={"path": "/msg"}, action={"status": 500})
        assert (await client.get(f"/faults/{rule['id']}")).json()["id"] == rule["id"]
        assert (await client.delete(f"/faults/{rule['id']}")).status_code == 204
        missing = await client.delete(f"/faults/{rule['id']}")
        assert missing.status_code == 404
        assert missing.json() == {"detail": f"No fault rule {rule['id']!r}"}
        assert (await client.get(f"/faults/{rule['id']}")).status_code == 404


async def test_a_bad_rule_is_a_422_naming_the_field() -> None:
    async with server() as client:
        response = await client.post(
            "/faults", json={"action": {"status": 503, "retry_after": "later"}}
        )
        assert response.status_code == 422
        [problem] = response.json()["detail"]
        assert problem["loc"] == ["body", "action", "status", "retry_after"]


async def test_the_rule_count_is_bounded() -> None:
    async with server(max_fault_rules=2) as client:
        await add(client, match={"path": "/a"}, action={"status": 500})
        await add(client, match={"path": "/b"}, action={"status": 500}, times=1)
        full = await client.post("/faults", json={"action": {"status": 500}})
        assert full.status_code == 409
        assert full.json()["detail"].startswith("at most 2 fault rules")
        await client.get("/b")  # spends the second rule, which makes room
        await add(client, match={"path": "/c"}, action={"status": 500})


async def test_the_fail_modes_are_rules_too() -> None:
    async with server() as client:
        await client.post("/fail/count/2")
        rules = (await client.get("/faults")).json()["rules"]
        assert [(r["id"], r["remaining"]) for r in rules] == [("fail-count", 2)]
        statuses = [(await client.get("/msg")).status_code for _ in range(3)]
        assert statuses == [500, 500, 200]
        status = (await client.get("/fail/status")).json()
        assert (status["requests_seen"], status["failures_injected"]) == (3, 2)
        assert (await client.get("/faults")).json()["rules"] == []
        await client.post("/fail/duration/60")
        await client.delete("/faults")
        assert (await client.get("/fail/status")).json()["failing"] is False


async def test_a_control_token_guards_rule_changes() -> None:
    async with server(control_token="s3cret") as client:
        refused = await client.post("/faults", json={"action": {"status": 500}})
        assert refused.status_code == 401
        assert (await client.delete("/faults")).status_code == 401
        assert (await client.get("/faults")).status_code == 200
        allowed = await client.post(
            "/faults",
            json={"action": {"status": 500}},
            headers={"Authorization": "Bearer s3cret"},
        )
        assert allowed.status_code == 201


async def test_faulted_requests_hold_a_concurrency_slot() -> None:
    """A hung request takes a slot like a real one; control routes still answer."""
    async with server(max_concurrency=1, queue_timeout=0.1) as client:
        await add(client, match={"path": "/msg"}, action={"hang": True}, times=1)
        async with trio.open_nursery() as nursery:
            hung = trio.Event()

            async def hang() -> None:
                with pytest.raises(httpx.ReadTimeout):
                    await client.get("/msg", timeout=2)
                hung.set()

            nursery.start_soon(hang)
            await first_rule_fired(client)
            shed = await client.get("/msg")
            assert shed.status_code == 503
            assert (await client.get("/health")).status_code == 200
            await hung.wait()


@pytest.mark.parametrize("kind", ["reset", "close", "truncate"])
async def test_the_server_keeps_serving_after_a_dropped_connection(kind: str) -> None:
    action: dict[str, Any] = {kind: True}
    async with server() as client:
        await add(client, match={"path": "/msg"}, action=action, times=3)
        for _ in range(3):
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                await client.get("/msg")
        assert (await client.get("/msg")).status_code == 200
        assert (await client.get("/health")).status_code == 200


async def test_sigterm_ends_a_hung_request_at_the_end_of_the_grace_period() -> None:
    """A hang never answers on its own: SIGTERM still stops the server, once the
    grace period is over, with exit code 0."""
    env = {"SERVER_SHUTDOWN_GRACE_PERIOD": "1"}
    outcome: dict[str, Any] = {}
    async with cli_server(env=env) as cli:
        async with httpx.AsyncClient(base_url=cli.base_url, timeout=10) as client:
            await add(client, match={"path": "/msg"}, action={"hang": True})

            async def hang() -> None:
                try:
                    outcome["status"] = (await client.get("/msg")).status_code
                except httpx.HTTPError as error:
                    outcome["error"] = type(error).__name__

            async with trio.open_nursery() as nursery:
                nursery.start_soon(hang)
                await first_rule_fired(client)
                cli.terminate()
                start = trio.current_time()
                with trio.fail_after(10):
                    code = await cli.process.wait()
                elapsed = trio.current_time() - start
    assert code == 0
    assert elapsed >= 1
    assert outcome in ({"status": 500}, {"error": "RemoteProtocolError"}), outcome


@pytest.mark.parametrize(
    ("action", "seen"),
    [
        ({"reset": True}, "ConnectionResetError"),
        ({"close": True}, "RemoteDisconnected"),
        ({"truncate": True}, "IncompleteRead"),
        ({"hang": True}, "ReadTimeoutError"),
    ],
)
async def test_what_urllib3_sees(action: dict[str, Any], seen: str) -> None:
    """Another client, another stack: the same faults on the wire."""
    async with server() as client:
        await add(client, match={"path": "/msg"}, action=action)
        url = f"{client.base_url}/msg"

        def call() -> str:
            pool = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(read=0.3))
            try:
                pool.request("GET", url)
            except urllib3.exceptions.HTTPError as error:
                return repr(error)
            finally:
                pool.clear()
            return "a response"

        assert seen in await trio.to_thread.run_sync(call)


@pytest.mark.parametrize("action", [None, {"reset": True}, {"truncate": True}])
async def test_a_request_is_journaled_before_its_client_sees_the_end(
    action: dict[str, Any] | None,
) -> None:
    """Read right after the response (or the dropped connection), the journal
    already holds the request: no polling needed."""
    async with server() as client:
        if action is not None:
            await add(client, match={"path": "/msg"}, action=action)
        for attempt in range(30):
            request_id = f"attempt-{attempt}"
            if action is None:
                await client.get("/msg", headers={"X-Request-ID": request_id})
            else:
                with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                    await client.get("/msg", headers={"X-Request-ID": request_id})
            [entry] = await journal(client, limit="1")
            assert entry["request_id"] == request_id
