"""Helpers for tests against a real server: in-process or through the command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
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
