"""Helpers for tests against a real server (in-process or through the command line),
and a Redis server of the test session's own."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

_RUNNING = re.compile(r"Running on (http://[\d.]+:\d+)")


@attrs.define
class CLIServer:
    """A ``python -m trio_resilience serve`` subprocess and what it printed."""

    process: trio.Process
    base_url: str
    lines: list[str]

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.strip()]

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)


async def _collect(stream: trio.abc.ReceiveStream, lines: list[str]) -> None:
    pending = b""
    async for chunk in stream:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        lines.extend(line.decode() for line in complete)
    if pending:
        lines.append(pending.decode())


@asynccontextmanager
async def cli_server(
    *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[CLIServer]:
    """Start the CLI server on port 0, yield once it listens, stop it afterwards."""
    command = [sys.executable, "-m", "trio_resilience", "serve", "--port", "0", *args]
    lines: list[str] = []
    async with trio.open_nursery() as nursery:
        process = await trio.lowlevel.open_process(
            command,
            stdout=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        assert process.stdout is not None
        nursery.start_soon(_collect, process.stdout, lines)
        try:
            with trio.fail_after(20):
                while not (found := [m for x in lines if (m := _RUNNING.search(x))]):
                    if process.poll() is not None:
                        raise RuntimeError(f"server exited early: {lines}")
                    await trio.sleep(0.05)
            yield CLIServer(process, found[0].group(1), lines)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            with trio.move_on_after(20) as scope:
                await process.wait()
            if scope.cancelled_caught:
                process.kill()
                await process.wait()


REQUIRE_REDIS = "TRIO_RESILIENCE_REQUIRE_REDIS"
"""Set (by .ci/run) to make a missing redis-server a failure instead of a skip."""


@attrs.frozen
class RedisServer:
    """A ``redis-server`` of the test session's own."""

    port: int
    process: subprocess.Popen[bytes]

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def command(self, *words: str) -> bytes:
        """One command over a raw socket (inline protocol); the first reply line."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(" ".join(words).encode() + b"\r\n")
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.rstrip(b"\r\n")


def _start_redis(directory: Path, port: int | None = None) -> RedisServer:
    """A redis-server in ``directory`` on ``port`` (default: a free one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (.ci/run installs it)"
        if os.environ.get(REQUIRE_REDIS):
            pytest.fail(reason)
        pytest.skip(reason)  # only Python here: the Redis tests show as skipped
    wanted = port
    for _ in range(5):  # a port found free may be taken before redis binds it
        if wanted is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
        assert port is not None
        options = ["--bind", "127.0.0.1", "--port", str(port), "--dir", str(directory)]
        options += ["--save", "", "--appendonly", "no"]  # nothing written to disk
        process = subprocess.Popen(
            [binary, *options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = RedisServer(port, process)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            try:
                if server.command("PING") == b"+PONG":
                    return server
            except OSError:
                time.sleep(0.01)
        process.kill()
        process.wait()
    pytest.fail("redis-server did not start")


start_redis = _start_redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A ``redis-server`` for the session: a free port (never 6379), a temporary
    directory, no persistence; stopped at the end."""
    server = _start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of database 0 of the session's Redis, emptied for this test."""
    assert redis_server.command("FLUSHALL") == b"+OK"
    return redis_server.url()
