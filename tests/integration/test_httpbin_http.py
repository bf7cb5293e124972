"""The httpbin-style routes over real HTTP: chunks on the wire, drips on the real
clock, redirects followed, and clients that leave in the middle of a body.

Timing is only ever bounded from below (a drip takes at least its duration); a
route that must stop when its client leaves is seen to stop in the journal, polled
under a deadline well below the time the route would otherwise take.
"""

from __future__ import annotations

import json
import random
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx
import trio

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background


@asynccontextmanager
async def client_for(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve_in_background(ServerSettings(log_level="ERROR", **settings)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        yield client


async def open_connection(
    client: httpx.AsyncClient, receive_buffer: int | None = None
) -> tuple[trio.SocketStream, str]:
    """A raw TCP connection to the client's server, and its Host header."""
    url = urlsplit(str(client.base_url))
    assert url.hostname is not None
    assert url.port is not None
    sock = trio.socket.socket()
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    await sock.connect((url.hostname, url.port))
    return trio.SocketStream(sock), f"{url.hostname}:{url.port}"


async def raw_get(
    client: httpx.AsyncClient, target: str
) -> tuple[h11.Response, list[h11.Data]]:
    """GET ``target`` with h11, which reports where each body chunk starts and ends."""
    stream, host = await open_connection(client)
    connection = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="GET", target=target, headers=[("Host", host), ("Connection", "close")]
    )
    response: h11.Response | None = None
    data: list[h11.Data] = []
    async with stream:
        await stream.send_all(
            connection.send(request) + connection.send(h11.EndOfMessage())
        )
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some(65_536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                data.append(event)
            elif isinstance(event, h11.EndOfMessage):
                break
    assert response is not None
    return response, data


def chunks(data: list[h11.Data]) -> list[bytes]:
    """The body's chunks as sent, however the reads split them."""
    found: list[bytes] = []
    for event in data:
        if event.chunk_start:
            found.append(b"")
        found[-1] += bytes(event.data)
    return found


async def journal_entry(
    client: httpx.AsyncClient, path: str, within: float = 30
) -> dict[str, Any]:
    """The journal's entry for ``path`` (recorded once its request ended)."""
    with trio.fail_after(within):
        while True:
            entries = (await client.get("/requests")).json()["requests"]
            found = [entry for entry in entries if entry["path"] == path]
            if found:
                return found[-1]
            await trio.sleep(0.05)


# /stream/{n}


async def test_stream_sends_each_line_as_its_own_chunk() -> None:
    async with client_for() as client:
        response, data = await raw_get(client, "/stream/5?tag=x")
    headers = dict(response.headers)
    assert response.status_code == 200
    assert headers[b"content-type"] == b"application/x-ndjson"
    assert headers[b"transfer-encoding"] == b"chunked"
    assert b"content-length" not in headers
    lines = chunks(data)
    assert len(lines) == 5
    for i, line in enumerate(lines):
        assert line.endswith(b"\n")
        assert line.count(b"\n") == 1
        item = json.loads(line)
        assert item["id"] == i
        assert (item["method"], item["path"]) == ("GET", "/stream/5")
        assert item["args"] == {"tag": "x"}
        assert "Host" in item["headers"]


async def test_a_thousand_lines() -> None:
    async with client_for() as client:
        async with client.stream("GET", "/stream/1000") as response:
            lines = [json.loads(line) async for line in response.aiter_lines()]
    assert [line["id"] for line in lines] == list(range(1000))
    assert "content-length" not in response.headers


async def test_client_leaving_mid_stream_ends_the_route() -> None:
    """1,000 lines of 12 kB (12 MB) cannot all fit in the socket buffers: the
    route is still sending when the client closes, and stops there."""
    async with client_for() as client:
        stream, host = await open_connection(client, receive_buffer=4096)
        request = (
            f"GET /stream/1000 HTTP/1.1\r\nHost: {host}\r\n"
            f"X-Pad: {'x' * 12_000}\r\n\r\n"
        ).encode()
        async with stream:
            await stream.send_all(request)
            received = b""
            while b'"id":1' not in received:
                received += await stream.receive_some(4096)
        entry = await journal_entry(client, "/stream/1000")
    assert received.startswith(b"HTTP/1.1 200")
    assert (entry["status"], entry["outcome"]) == (200, "client_closed")


# /drip


async def test_drip_takes_its_duration() -> None:
    """Headers after delay, then the bytes a few at a time until delay + duration."""
    async with client_for() as client:
        start = time.monotonic()
        async with client.stream(
            "GET", "/drip?delay=0.5&duration=1&numbytes=5&code=503"
        ) as response:
            headers_after = time.monotonic() - start
            body = await response.aread()
        elapsed = time.monotonic() - start
        _, data = await raw_get(client, "/drip?duration=1&numbytes=5")
    assert headers_after >= 0.5
    assert elapsed >= 1.5
    assert (response.status_code, body) == (503, b"*****")
    assert response.headers["content-length"] == "5"
    assert response.headers["content-type"] == "application/octet-stream"
    assert b"".join(bytes(event.data) for event in data) == b"*****"
    assert len(data) >= 2  # spread out, not sent in one piece


async def test_drip_defaults() -> None:
    """10 bytes over 2 s, status 200, no delay."""
    async with client_for() as client:
        start = time.monotonic()
        response = await client.get("/drip")
        elapsed = time.monotonic() - start
    assert (response.status_code, response.content) == (200, b"*" * 10)
    assert elapsed >= 2


async def test_client_leaving_mid_drip_ends_the_route() -> None:
    """A drip of 60 s whose client leaves after the first byte ends at once."""
    async with client_for(request_timeout=120) as client:
        stream, host = await open_connection(client)
        request = f"GET /drip?duration=60&numbytes=60 HTTP/1.1\r\nHost: {host}\r\n\r\n"
        async with stream:
            await stream.send_all(request.encode())
            received = b""
            while b"\r\n\r\n*" not in received:
                received += await stream.receive_some(4096)
        entry = await journal_entry(client, "/drip")
    assert received.startswith(b"HTTP/1.1 200")
    assert b"content-length: 60\r\n" in received.lower()
    assert (entry["status"], entry["outcome"]) == (200, "client_closed")
    assert entry["duration_ms"] < 60_000


async def test_head_drip_sends_no_drip() -> None:
    async with client_for() as client:
        response = await client.head("/drip?duration=30&numbytes=30")
        entry = await journal_entry(client, "/drip")
    assert response.status_code == 200
    assert response.headers["content-length"] == "30"
    assert response.content == b""
    assert entry["outcome"] == "ok"


# /status, /bytes, /redirect, /anything, /delay


async def test_status_over_http() -> None:
    async with client_for() as client:
        busy = await client.get("/status/503?retry_after=2")
        posted = await client.post("/status/201", json={"read": "and dropped"})
        empty = await client.delete("/status/204")
        head = await client.head("/status/429")
        seeded = [await client.post(f"/status/500:1,200:1?seed={n}") for n in range(8)]
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "2"
    assert busy.json() == {"detail": "Service Unavailable"}
    assert (posted.status_code, posted.json()) == (201, {"status": 201})
    assert "connection" not in posted.headers  # the body was read: kept alive
    assert empty.status_code == 204
    assert "content-type" not in empty.headers
    assert "content-length" not in empty.headers
    assert (head.status_code, head.content) == (429, b"")
    expected = [random.Random(n).choices([500, 200])[0] for n in range(8)]
    assert [response.status_code for response in seeded] == expected


async def test_bytes_over_http() -> None:
    async with client_for() as client:
        full = await client.get("/bytes/1048576?seed=9")
        head = await client.head("/bytes/100")
        empty = await client.get("/bytes/0")
    assert full.content == random.Random(9).randbytes(1_048_576)
    assert full.headers["content-type"] == "application/octet-stream"
    assert (head.headers["content-length"], head.content) == ("100", b"")
    assert head.headers["content-type"] == "application/octet-stream"
    assert (empty.status_code, empty.content) == (200, b"")
    assert "content-type" not in empty.headers


async def test_redirects_lead_to_anything() -> None:
    async with client_for() as client:
        followed = await client.get("/redirect/3", follow_redirects=True)
        absolute = await client.get("/redirect/2?absolute=true")
        kept = await client.post(
            "/redirect/2?status=307", json={"n": 1}, follow_redirects=True
        )
    assert followed.status_code == 200
    assert [r.status_code for r in followed.history] == [302, 302, 302]
    assert followed.json()["path"] == "/anything"
    assert absolute.headers["location"] == (
        f"{str(client.base_url).rstrip('/')}/redirect/1?absolute=true"
    )
    assert [r.status_code for r in kept.history] == [307, 307]
    assert (kept.json()["method"], kept.json()["json"]) == ("POST", {"n": 1})


async def test_anything_over_http() -> None:
    """Repeated headers joined; bodies must be JSON (415) and small enough (413)."""
    async with client_for(max_body_bytes=1000) as client:
        echoed = await client.put(
            "/anything/x?a=1&a=2",
            json={"k": [1, "v"]},
            headers=[("X-Multi", "one"), ("X-Multi", "two")],
        )
        text = await client.post(
            "/anything", content=b"hi", headers={"Content-Type": "text/plain"}
        )
        large = await client.post("/anything", json={"pad": "x" * 2000})
        invalid = await client.patch(
            "/anything", content=b"{", headers={"Content-Type": "application/json"}
        )
    body = echoed.json()
    assert (body["method"], body["path"]) == ("PUT", "/anything/x")
    assert body["args"] == {"a": ["1", "2"]}
    assert body["headers"]["X-Multi"] == "one, two"
    assert body["json"] == {"k": [1, "v"]}
    assert (text.status_code, large.status_code) == (415, 413)
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body"]


async def test_delay_over_http() -> None:
    async with client_for(request_timeout=0.5) as client:
        start = time.monotonic()
        waited = await client.get("/delay/0.2")
        elapsed = time.monotonic() - start
        timed_out = await client.get("/delay/5")
    assert waited.status_code == 200
    assert waited.json()["path"] == "/delay/0.2"
    assert elapsed >= 0.2
    assert timed_out.status_code == 504
