"""PooledTransport on the wire: the response shapes a parser must get right (HEAD,
interim 1xx, bodies ended by the close, HTTP/1.0, no-body statuses, reason
phrases, malformed and oversized heads) and the request heads it refuses to write
(CR/LF smuggled into a header, an illegal header name). A hand-written server on
127.0.0.1 sends exactly the bytes under test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import trio

from .test_pool_http import (
    Conn,
    assert_clean,
    ok,
    pooled_client,
    raw_server,
    response,
    serve_routes,
    wait_for,
)


def answering(*answers: bytes, close: bool = False):  # type: ignore[no-untyped-def]
    """A handler that answers the server's n-th request with ``answers[n]`` (raw
    bytes), then ``ok`` responses; ``close`` ends the connection after the last
    of ``answers``."""
    number = 0

    async def handler(conn: Conn) -> None:
        nonlocal number
        while await conn.request() is not None:
            if number < len(answers):
                number += 1  # first: the client may hang up mid-send
                await conn.send(answers[number - 1])
                if close and number == len(answers):
                    return
            else:
                await conn.send(response())

    return handler


async def test_a_head_answer_has_no_body_and_keeps_the_connection() -> None:
    """HEAD answered with Content-Length: 1000 and no body: an empty body, and
    the connection serves the next request."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
    with trio.fail_after(10):
        async with (
            raw_server(answering(head)) as server,
            pooled_client(server.url) as (client, transport),
        ):
            answer = await client.head("/")
            assert (answer.status_code, answer.content) == (200, b"")
            assert answer.headers["content-length"] == "1000"
            await ok(client)
            assert (transport.stats().created, server.accepted) == (1, 1)
            assert_clean(transport)


@pytest.mark.parametrize("split", [False, True])
async def test_interim_1xx_answers_are_skipped(split: bool) -> None:
    """``100 Continue`` (and ``103 Early Hints``) before the answer, in the same
    packet or apart: the caller sees the final answer and only its headers."""
    interim = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
    )
    final = response(b"done")

    async def handler(conn: Conn) -> None:
        await conn.request()
        if split:
            await conn.send(interim)
            await trio.testing.wait_all_tasks_blocked()
            await conn.send(final)
        else:
            await conn.send(interim + final)
        await conn.wait_eof()

    with trio.fail_after(10):
        async with (
            raw_server(handler) as server,
            pooled_client(server.url) as (client, transport),
        ):
            answer = await client.get("/")
            assert (answer.status_code, answer.content) == (200, b"done")
            assert "link" not in answer.headers
            assert_clean(transport)


async def test_a_body_ended_by_the_close_is_whole_and_not_reused() -> None:
    """HTTP/1.1 200 with neither Content-Length nor chunked: the body runs to the
    server's close; the connection is not kept."""
    answer_bytes = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    with trio.fail_after(10):
        async with (
            raw_server(answering(answer_bytes, close=True)) as server,
            pooled_client(server.url) as (client, transport),
        ):
            answer = await client.get("/")
            assert answer.content == b"all of it"
            assert transport.stats().open == 0
            await ok(client)
            assert server.accepted == 2
            assert_clean(transport)


@pytest.mark.parametrize(
    "first",
    [
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    ],
    ids=["http/1.0", "connection-close"],
)
async def test_answers_that_end_the_connection_are_not_reused(first: bytes) -> None:
    """An HTTP/1.0 answer (no keep-alive) or one with Connection: close: the
    connection is closed after the body, the next request opens another."""
    with trio.fail_after(10):
        async with (
            raw_server(answering(first)) as server,
            pooled_client(server.url) as (client, transport),
        ):
            assert (await client.get("/")).content == b"ok"
            assert transport.stats().open == 0
            await ok(client)
            assert server.accepted == 2
            assert_clean(transport)


@pytest.mark.parametrize("status", [204, 304])
async def test_no_body_statuses_keep_the_connection(status: int) -> None:
    """204 and 304 carry no body whatever their headers say: the next request
    reuses the connection."""
    first = f'HTTP/1.1 {status} X\r\nETag: "1"\r\n\r\n'.encode()
    with trio.fail_after(10):
        async with (
            raw_server(answering(first)) as server,
            pooled_client(server.url) as (client, transport),
        ):
            answer = await client.get("/")
            assert (answer.status_code, answer.content) == (status, b"")
            await ok(client)
            assert server.accepted == 1
            assert_clean(transport)


async def test_the_reason_phrase_and_version_reach_the_response() -> None:
    """The status line's own reason phrase and HTTP version, as httpx reports
    them."""
    first = b"HTTP/1.1 418 Teapot Time\r\nContent-Length: 0\r\n\r\n"
    with trio.fail_after(10):
        async with (
            raw_server(answering(first)) as server,
            pooled_client(server.url) as (client, _),
        ):
            answer = await client.get("/")
            assert answer.status_code == 418
            assert answer.reason_phrase == "Teapot Time"
            assert answer.http_version == "HTTP/1.1"


@pytest.mark.parametrize(
    "first",
    [
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n" + b"X-Big: " + b"x" * 200_000 + b"\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Le",
    ],
    ids=["bad-status", "two-lengths", "huge-head", "cut-head"],
)
async def test_malformed_answers_raise_remote_protocol_error(first: bytes) -> None:
    """A malformed status line, conflicting lengths, a head over 100 KiB, a head
    cut by the close: `httpx.RemoteProtocolError`, never resent (bytes of an
    answer arrived), and the pool stays usable."""
    with trio.fail_after(10):
        async with (
            raw_server(answering(first, close=True)) as server,
            pooled_client(server.url) as (client, transport),
        ):
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get("/")
            assert len(server.requests) == 1
            assert_clean(transport)
            await ok(client)


@pytest.mark.parametrize(
    "headers",
    [{"X-Evil": "a\r\nInjected: 1"}, {"X-Evil": "a\nb"}, {"Bad Name": "v"}],
    ids=["crlf-in-value", "lf-in-value", "space-in-name"],
)
async def test_request_heads_that_would_smuggle_are_refused(
    headers: dict[str, str],
) -> None:
    """CR or LF inside a header value, or an illegal header name: refused with
    `httpx.LocalProtocolError` before anything is written; the pool is clean."""
    with trio.fail_after(10):
        async with (
            raw_server(serve_routes) as server,
            pooled_client(server.url) as (client, transport),
        ):
            with pytest.raises(httpx.LocalProtocolError):
                await client.get("/", headers=headers)
            assert server.requests == []
            assert_clean(transport)
            await ok(client)


async def test_a_chunked_answer_read_in_pieces_is_whole() -> None:
    """A chunked body of 50 pieces sent one by one, read with aiter_bytes: every
    byte arrives in order and the connection is reused."""
    pieces = [bytes([65 + i % 26]) * 1000 for i in range(50)]

    async def handler(conn: Conn) -> None:
        while await conn.request() is not None:
            await conn.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in pieces:
                await conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            await conn.send(b"0\r\n\r\n")

    with trio.fail_after(10):
        async with (
            raw_server(handler) as server,
            pooled_client(server.url) as (client, transport),
        ):
            for _ in range(2):
                received = bytearray()
                async with client.stream("GET", "/") as answer:
                    async for chunk in answer.aiter_bytes():
                        received += chunk
                assert bytes(received) == b"".join(pieces)
            assert server.accepted == 1
            assert_clean(transport)


async def test_a_streamed_request_body_goes_out_chunked() -> None:
    """A generator body (no length): written chunked, the server gets every piece."""

    async def body() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"piece {i};".encode()

    with trio.fail_after(10):
        async with (
            raw_server(serve_routes) as server,
            pooled_client(server.url) as (client, transport),
        ):
            answer = await client.post("/echo", content=body())
            assert answer.content == b"piece 0;piece 1;piece 2;piece 3;piece 4;"
            assert server.requests[0].headers["transfer-encoding"] == "chunked"
            assert_clean(transport)


async def test_a_silent_server_is_a_read_timeout() -> None:
    """No answer within the read timeout: `httpx.ReadTimeout` naming it; the
    connection is closed (the server sees it) and the pool is clean."""
    with trio.fail_after(10):
        async with (
            raw_server(serve_routes) as server,
            pooled_client(server.url) as (client, transport),
        ):
            with pytest.raises(
                httpx.ReadTimeout, match=r"^no response data within 0.2s$"
            ):
                await client.get("/hang", timeout=httpx.Timeout(5, read=0.2))
            await wait_for(lambda: server.closed == 1)
            assert_clean(transport)
            await ok(client)


async def test_a_server_that_stops_reading_is_a_write_timeout() -> None:
    """A 64 MiB body to a server that reads none of it: the socket's buffers fill
    and the write timeout ends the request with `httpx.WriteTimeout`."""
    with trio.fail_after(20):
        async with (
            raw_server(serve_routes) as server,
            pooled_client(server.url) as (client, transport),
        ):
            with pytest.raises(
                httpx.WriteTimeout, match=r"^request not written within"
            ):
                await client.post(
                    "/body-hang",
                    content=b"x" * (64 * 1024 * 1024),
                    timeout=httpx.Timeout(5, write=0.2),
                )
            server.events["drain"].set()
            await wait_for(lambda: server.closed == 1)
            assert_clean(transport)
