"""Start-up failures of ``serve`` as a user meets them: one line, exit code 2."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from .conftest import cli_server


def run_cli(
    *args: str,
    cwd: Path | str,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m trio_resilience *args`` in ``cwd``, to completion."""
    return subprocess.run(
        [sys.executable, "-m", "trio_resilience", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one ``Error: ...`` line of a start-up failure (exit 2, no traceback)."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith("\n")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port on 127.0.0.1 that this test holds bound and listening."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


RELOAD = pytest.mark.parametrize("reload", [[], ["--reload"]], ids=["plain", "reload"])


@RELOAD
def test_port_in_use(taken_port: int, tmp_path: Path, reload: list[str]) -> None:
    """A taken port is one line naming the address and the cause, exit 2."""
    result = run_cli("serve", "--port", str(taken_port), *reload, cwd=tmp_path)
    assert error_line(result) == (
        f"Error: cannot listen on 127.0.0.1:{taken_port} (SERVER_HOST, SERVER_PORT): "
        f"{os.strerror(errno.EADDRINUSE)}"
    )


@RELOAD
def test_unresolvable_host(tmp_path: Path, reload: list[str]) -> None:
    """A --host that does not resolve is one line naming the host, exit 2."""
    result = run_cli(
        "serve", "--host", "nope.invalid", "--port", "0", *reload, cwd=tmp_path
    )
    assert error_line(result).startswith(
        "Error: cannot resolve host 'nope.invalid' (SERVER_HOST): "
    )


def test_address_not_on_this_machine(tmp_path: Path) -> None:
    """A --host of no local interface (TEST-NET-1) is one line, exit 2."""
    result = run_cli("serve", "--host", "192.0.2.1", "--port", "0", cwd=tmp_path)
    assert error_line(result) == (
        "Error: cannot listen on 192.0.2.1:0 (SERVER_HOST, SERVER_PORT): "
        f"{os.strerror(errno.EADDRNOTAVAIL)}"
    )


@pytest.mark.parametrize(
    ("where", "cause"),
    [
        ("file/x.log", errno.ENOTDIR),  # the parent is a regular file
        ("missing/x.log", errno.ENOENT),
        (".", errno.EISDIR),
    ],
    ids=["parent-is-a-file", "no-such-directory", "a-directory"],
)
def test_log_file_cannot_be_opened(tmp_path: Path, where: str, cause: int) -> None:
    """A SERVER_LOG_FILE that cannot be opened is one line naming it, exit 2."""
    (tmp_path / "file").write_text("")
    log_file = tmp_path / where
    result = run_cli(
        "serve", "--port", "0", cwd=tmp_path, env={"SERVER_LOG_FILE": str(log_file)}
    )
    assert error_line(result) == (
        f"Error: cannot open log file '{log_file}' (SERVER_LOG_FILE): "
        f"{os.strerror(cause)}"
    )


@pytest.mark.parametrize("command", ["serve", "config-info"])
def test_env_file_not_utf8_in_the_working_directory(
    tmp_path: Path, command: str
) -> None:
    """A .env that is not UTF-8 is one line naming it and the bad byte, exit 2."""
    (tmp_path / ".env").write_bytes(b"SERVER_PORT=0\nSERVER_HOST=caf\xe9\n")
    result = run_cli(command, cwd=tmp_path)
    assert error_line(result) == (
        "Error: cannot read env file '.env': not UTF-8 "
        "(byte 0xe9 at offset 29: invalid continuation byte)"
    )


def test_env_file_not_utf8_given_by_flag(tmp_path: Path) -> None:
    """--env-file naming a non-UTF-8 file is one line naming that file, exit 2."""
    env_file = tmp_path / "settings.env"
    env_file.write_bytes(b"\xff\xfe")
    result = run_cli("serve", "--env-file", str(env_file), cwd=tmp_path)
    assert error_line(result).startswith(
        f"Error: cannot read env file '{env_file}': not UTF-8 (byte 0xff at offset 0"
    )


@pytest.mark.parametrize("command", ["serve", "config-info"])
def test_env_file_is_a_directory(tmp_path: Path, command: str) -> None:
    """An env file that is a directory is one line, not a usage screen, exit 2."""
    result = run_cli(command, "--env-file", str(tmp_path), cwd=tmp_path)
    assert error_line(result) == (
        f"Error: cannot read env file '{tmp_path}': {os.strerror(errno.EISDIR)}"
    )


async def test_sigint_while_serving_still_exits_0() -> None:
    """SIGINT once the server listens is a graceful shutdown (exit 0), no error."""
    async with cli_server() as server:
        server.process.send_signal(signal.SIGINT)
        assert await server.process.wait() == 0
    assert any('"shutdown requested"' in line for line in server.lines)
    assert not any("Traceback" in line for line in server.lines)


def environment_without_settings(**extra: str) -> dict[str, str]:
    """This process's environment without any SERVER_* variable, plus ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.upper().startswith("SERVER_")}
    return {**clean, **extra}


def run_clean_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m trio_resilience *args`` with no SERVER_* variable but ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "trio_resilience", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment_without_settings(**(env or {})),
        timeout=60,
        check=False,
    )


TYPO_IN_ENV_FILE = (
    "Warning: unknown setting SERVER_MAX_CONCURENCY in env file '.env' ignored; "
    "did you mean SERVER_MAX_CONCURRENCY?"
)
TYPO_IN_ENVIRONMENT = (
    "Warning: unknown setting SERVER_LOG_LEVL in the environment ignored; "
    "did you mean SERVER_LOG_LEVEL?"
)


def test_config_info_warns_about_a_typo_in_the_env_file(tmp_path: Path) -> None:
    """An unknown SERVER_* key in .env is one warning line naming the key and the
    closest setting; config-info still prints the configuration and exits 0."""
    (tmp_path / ".env").write_text("SERVER_MAX_CONCURENCY=3\nOTHER_TOOL_KEY=1\n")
    result = run_clean_cli("config-info", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [TYPO_IN_ENV_FILE]
    assert json.loads(result.stdout)["max_concurrency"] == 50


def test_config_info_warns_about_a_typo_in_the_environment(tmp_path: Path) -> None:
    """An unknown SERVER_* variable is one warning line; one without a close match
    is named alone."""
    result = run_clean_cli(
        "config-info",
        cwd=tmp_path,
        env={"SERVER_LOG_LEVL": "debug", "SERVER_ZQXJ": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stderr.splitlines()) == [
        TYPO_IN_ENVIRONMENT,
        "Warning: unknown setting SERVER_ZQXJ in the environment ignored",
    ]
    assert json.loads(result.stdout)["log_level"] == "INFO"


def test_config_info_is_silent_without_unknown_keys(tmp_path: Path) -> None:
    """Known keys, in any case, and other prefixes draw no warning."""
    (tmp_path / ".env").write_text("server_port=9000\nOTHER_TOOL_KEY=1\n")
    result = run_clean_cli("config-info", cwd=tmp_path, env={"Server_Host": "::1"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["port"] == 9000


def test_empty_optional_settings_in_the_env_file_are_unset(tmp_path: Path) -> None:
    """``SERVER_JOB_TIMEOUT=`` and friends in .env mean unset, not an error."""
    (tmp_path / ".env").write_text(
        "SERVER_JOB_TIMEOUT=\nSERVER_QUEUE_TIMEOUT=\nSERVER_LOG_FILE=\n"
    )
    result = run_clean_cli("config-info", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    shown = json.loads(result.stdout)
    assert (shown["job_timeout"], shown["queue_timeout"], shown["log_file"]) == (
        None,
        None,
        None,
    )


async def test_serve_warns_about_unknown_keys_and_serves(tmp_path: Path) -> None:
    """serve prints one warning per unknown key on stderr, then serves as usual
    (and exits 0 on SIGTERM)."""
    (tmp_path / ".env").write_text("SERVER_MAX_CONCURENCY=3\n")
    out: list[str] = []
    err: list[str] = []
    async with trio.open_nursery() as nursery:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trio_resilience", "serve", "--port", "0"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environment_without_settings(SERVER_LOG_LEVL="debug"),
        )
        assert process.stdout is not None
        assert process.stderr is not None
        nursery.start_soon(collect_lines, process.stdout, out)
        nursery.start_soon(collect_lines, process.stderr, err)
        try:
            with trio.fail_after(20):
                while not any("Running on http://" in line for line in out):
                    assert process.poll() is None, (out, err)
                    await trio.sleep(0.02)
        finally:
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await process.wait()
    assert process.returncode == 0, err
    assert sorted(err) == sorted([TYPO_IN_ENV_FILE, TYPO_IN_ENVIRONMENT])


async def collect_lines(stream: trio.abc.ReceiveStream, lines: list[str]) -> None:
    pending = b""
    async for chunk in stream:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        lines.extend(line.decode() for line in complete)
    if pending:
        lines.append(pending.decode())
