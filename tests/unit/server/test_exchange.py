"""`Exchange.end` runs before the client can see a response end: before the
write that completes its Content-Length, or its final message (chunked), never
after. The callbacks it runs are the request log, the journal and the metrics."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trio_resilience.server._asgi import Message
from trio_resilience.server._connections import Exchange

SCOPE = {"type": "http", "http_version": "1.1", "method": "GET", "headers": []}


def exchange(events: list[str], method: str = "GET") -> Exchange:
    async def receive() -> Message:
        raise AssertionError("not read")

    async def send(message: Message) -> None:
        await trio.lowlevel.checkpoint()
        kind = message["type"].removeprefix("http.response.")
        events.append(kind if kind == "start" else f"body {message['body']!r}")

    made = Exchange({**SCOPE, "method": method}, receive, send, lambda: False)
    made.on_end(lambda: events.append("end"))
    return made


def start(*headers: tuple[bytes, bytes]) -> Message:
    return {"type": "http.response.start", "status": 200, "headers": list(headers)}


def body(data: bytes, more: bool) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


@pytest.mark.parametrize(
    ("head", "pieces", "expected"),
    [
        # Quart: the body, then an empty final message.
        (
            [(b"content-length", b"4")],
            [body(b"abcd", True), body(b"", False)],
            ["start", "end", "body b'abcd'", "body b''"],
        ),
        # In pieces (drip): the end comes before the last piece.
        (
            [(b"content-length", b"4")],
            [body(b"ab", True), body(b"cd", True), body(b"", False)],
            ["start", "body b'ab'", "end", "body b'cd'", "body b''"],
        ),
        # Chunked: the final message ends it.
        (
            [(b"transfer-encoding", b"chunked")],
            [body(b"ab", True), body(b"", False)],
            ["start", "body b'ab'", "end", "body b''"],
        ),
        # A body cut short (truncate): never ended by the send.
        (
            [(b"content-length", b"4")],
            [body(b"ab", True)],
            ["start", "body b'ab'"],
        ),
    ],
)
async def test_end_runs_before_the_write_that_completes_the_response(
    autojump_clock: trio.testing.MockClock,
    head: list[tuple[bytes, bytes]],
    pieces: list[Message],
    expected: list[str],
) -> None:
    events: list[str] = []
    made = exchange(events)
    await made.send(start(*head))
    for piece in pieces:
        await made.send(piece)
    assert events == expected
    assert made.finished is ("end" in expected)
    made.end()  # the outer layers' call: the callback runs once in all
    assert events.count("end") == 1


@pytest.mark.parametrize(
    ("method", "status", "head"),
    [
        ("HEAD", 200, [(b"content-length", b"53")]),  # the GET's length, no body
        ("GET", 200, [(b"content-length", b"0")]),
        ("DELETE", 204, []),
        ("GET", 304, []),
    ],
)
async def test_a_response_without_a_body_ends_before_its_head_is_written(
    autojump_clock: trio.testing.MockClock,
    method: str,
    status: int,
    head: list[tuple[bytes, bytes]],
) -> None:
    events: list[str] = []
    made = exchange(events, method)
    await made.send({"type": "http.response.start", "status": status, "headers": head})
    await made.send(body(b"", False))
    assert events == ["end", "start", "body b''"]
    assert made.finished
