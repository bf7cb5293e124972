"""The command line as a user runs it: a subprocess, signals, exit codes, logs."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx
import pytest
import trio

from .conftest import cli_server
from .test_server_http import specification_flow, wait_until_msg_in_flight


async def test_specification_flow_through_the_cli() -> None:
    """`python -m trio_resilience serve` passes the flow and logs JSON lines."""
    async with cli_server("--log-format", "json") as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            await specification_flow(client)
            await client.get("/msg", headers={"X-Request-ID": "find-me"})
        server.terminate()
        assert await server.process.wait() == 0
    entries = server.json_lines()  # every line is JSON
    requests = [e for e in entries if e["event"] == "request"]
    assert len(requests) == 12
    mine = [e for e in requests if e["request_id"] == "find-me"]
    assert len(mine) == 1
    assert mine[0]["method"] == "GET"
    assert mine[0]["path"] == "/msg"
    assert mine[0]["status"] == 200
    assert mine[0]["outcome"] == "ok"
    assert isinstance(mine[0]["duration_ms"], float)
    assert mine[0]["level"] == "info"
    assert "timestamp" in mine[0]
    assert any(e["event"] == "shutdown requested" for e in entries)


async def test_graceful_shutdown_finishes_in_flight_requests() -> None:
    """SIGTERM: in-flight requests finish, new connections are refused, exit 0."""
    async with cli_server() as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            results: list[httpx.Response] = []

            async def slow() -> None:
                results.append(await client.get("/msg", params={"delay": 1000}))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(slow)
                await wait_until_msg_in_flight(server.base_url)
                server.terminate()
            assert results[0].status_code == 200
        assert await server.process.wait() == 0
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("/health")


async def test_flags_override_the_environment() -> None:
    """--max-concurrency wins over SERVER_MAX_CONCURRENCY."""
    env = {"SERVER_MAX_CONCURRENCY": "3", "SERVER_QUEUE_TIMEOUT": "0"}
    async with cli_server("--max-concurrency", "1", env=env) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            results: list[int] = []

            async def call(delay: int) -> None:
                results.append((await client.get(f"/msg?delay={delay}")).status_code)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call, 1000)
                await wait_until_msg_in_flight(server.base_url)
                nursery.start_soon(call, 0)
        assert results == [503, 200]


def run_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trio_resilience", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_invalid_setting_exits_2_with_one_line() -> None:
    """A bad value stops start-up with a one-line reason and exit code 2."""
    import os

    result = run_cli("serve", env={**os.environ, "SERVER_MAX_CONCURRENCY": "lots"})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: invalid configuration: max_concurrency")
    assert "SERVER_MAX_CONCURRENCY" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_flag_exits_2() -> None:
    """A bad flag value is a usage error (exit 2)."""
    result = run_cli("serve", "--port", "99999")
    assert result.returncode == 2
    assert "port" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_info_prints_effective_settings() -> None:
    """config-info prints the settings as JSON, environment included."""
    import os

    result = run_cli(
        "config-info", env={**os.environ, "SERVER_CACHE_TTL_SECONDS": "12"}
    )
    assert result.returncode == 0
    settings = json.loads(result.stdout)
    assert settings["cache_ttl_seconds"] == 12.0
    assert settings["max_concurrency"] == 50
    assert settings["host"] == "127.0.0.1"


def test_console_script_is_installed() -> None:
    """The trio-resilience command exists and shows help."""
    script = subprocess.run(
        ["trio-resilience", "--help"], capture_output=True, text=True, check=False
    )
    assert script.returncode == 0
    assert "serve" in script.stdout
    assert "config-info" in script.stdout
