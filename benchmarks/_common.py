"""Helpers shared by the benchmark scripts.

The scripts are run as ``python benchmarks/bench_X.py``, so this directory is on
``sys.path`` and they import this module as ``_common``.

Most of it is for ``bench_server.py`` and ``bench_client.py``, which both start an
HTTP server as a subprocess on 127.0.0.1 and measure requests to it: a free port,
starting, checking and stopping the server, pinning it to a CPU of its own, reading
its CPU time (`Clocks`), the order of interleaved slices (`interleaved`); and the
bits of reporting they have in common. `environment` is used
by every benchmark; `redis_server` and `redis_cli` by those that need a Redis,
`uvicorn_server` by those that serve an ASGI app with uvicorn.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import trio

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PATH = "/msg"

WIDTH = 88
"""Of the prose lines in the report."""

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


class BenchmarkError(Exception):
    """Something went wrong that makes the figures meaningless."""


# -- the server process ----------------------------------------------------------


@dataclass
class ServerProcess:
    """A server subprocess listening on ``HOST:port``, its output going to a file."""

    port: int
    process: subprocess.Popen[bytes]
    output: Path
    exit_code: int | None = field(default=None, kw_only=True)

    def output_tail(self, lines: int = 20) -> str:
        try:
            text = self.output.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"


Server = TypeVar("Server", bound=ServerProcess)


def callgrind_instructions(argv: Sequence[str]) -> int:
    """The instructions ``argv`` runs, counted by valgrind's callgrind (whatever
    else the machine is doing)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        done = subprocess.run(
            [*command, *argv], capture_output=True, text=True, check=True
        )
    found = re.search(r"refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(found.group(1).replace(",", ""))


def callgrind_per_operation(argv: Sequence[str], base: int, extra: int) -> float:
    """Instructions per operation of ``argv``, a command doing as many operations
    as its last argument says (appended here): counted for ``base`` and
    ``base + extra``, so that start-up and imports cancel out."""
    low = callgrind_instructions([*argv, str(base)])
    return (callgrind_instructions([*argv, str(base + extra)]) - low) / extra


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start_process(
    argv: list[str], cwd: Path, output: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``argv`` started with no stdin, its stdout and stderr going to ``output``
    (``env=None``: this process's environment)."""
    with output.open("wb") as out:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until_up(server: ServerProcess, name: str = "the server") -> None:
    """Until the server answers HTTP at all (``/health``; any status will do).

    ``name`` is what the error messages call the server.
    """
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise BenchmarkError(
                f"{name} exited with code {server.process.returncode} before "
                f"answering:\n{server.output_tail()}"
            )
        try:
            http_get(server.port, "/health", timeout=1.0)
        except OSError:
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"{name} did not answer within {STARTUP_TIMEOUT:g} s:\n"
                    f"{server.output_tail()}"
                ) from None
            time.sleep(0.05)
        else:
            return


def verify_message(port: int, prefix: str = "") -> None:
    """``GET /msg`` answers 200 with ``{"message_id": <a UUID4>}``.

    ``prefix`` starts every error message (e.g. the server's name and ": ").
    """
    check_message(*http_get(port, PATH), prefix)


def check_message(status: int, body: bytes, prefix: str = "") -> None:
    """An answer to ``GET /msg`` is a 200 with ``{"message_id": <a UUID4>}``."""
    if status != 200:
        raise BenchmarkError(f"{prefix}GET {PATH} answered {status}: {body[:200]!r}")
    try:
        message_id = json.loads(body)["message_id"]
        parsed = uuid.UUID(message_id)
    except (ValueError, KeyError, TypeError) as error:
        raise BenchmarkError(
            f"{prefix}GET {PATH} body is not {{'message_id': <uuid>}}: {body[:200]!r}"
        ) from error
    if parsed.version != 4:
        raise BenchmarkError(f"{prefix}message_id {message_id} is not a UUID4")


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then SIGKILL after `STOP_TIMEOUT`; returns the exit code."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                return process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
    finally:
        # Also reached on a second Ctrl-C while waiting above.
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode


@contextlib.contextmanager
def stopped_on_exit(server: Server, name: str = "the server") -> Iterator[Server]:
    """``server`` once it answers (see `wait_until_up`); stopped on any exit, with
    its exit code in ``server.exit_code``."""
    try:
        wait_until_up(server, name)
        yield server
    finally:
        server.exit_code = stop(server.process)


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a running process (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # Fields after the ")" that ends the command name start at field 3 (state);
    # utime and stime are fields 14 and 15.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(pid: int) -> float | None:
    """`process_cpu_seconds` of ``pid`` plus those of its running descendants (a
    server's worker processes), or None."""
    own = process_cpu_seconds(pid)
    if own is None:
        return None
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        children = [
            int(child) for t in tasks for child in (t / "children").read_text().split()
        ]
    except OSError:
        return own
    return own + sum(process_tree_cpu_seconds(child) or 0.0 for child in children)


# -- uvicorn ---------------------------------------------------------------------

UVICORN_HTTP = "httptools" if importlib.util.find_spec("httptools") else "h11"
"""uvicorn's fastest HTTP/1.1 implementation installed."""


@contextlib.contextmanager
def uvicorn_server(app: str, pin: Sequence[str] = ()) -> Iterator[ServerProcess]:
    """ASGI ``app`` ("module:attribute", importable from the repository root) served
    by uvicorn on ``HOST`` (a free port, one process, `UVICORN_HTTP`, warnings only,
    no access log), started with the ``pin`` prefix (see `TwoCpus.taskset_argv`);
    once ``GET /msg`` answers (`verify_message`, also checked on the way out), and
    stopped on any exit."""
    port = free_port()
    argv = [*pin, sys.executable, "-m", "uvicorn", app, "--app-dir", str(REPO_ROOT)]
    argv += ["--host", HOST, "--port", str(port), "--http", UVICORN_HTTP]
    argv += ["--log-level", "warning", "--no-access-log"]
    with tempfile.TemporaryDirectory(prefix="uvicorn-") as tmp:
        output = Path(tmp) / "uvicorn.out"
        process = start_process(argv, REPO_ROOT, output)
        with stopped_on_exit(ServerProcess(port, process, output), "uvicorn") as server:
            verify_message(port, "uvicorn: ")
            yield server
            if process.poll() is not None:
                raise BenchmarkError(f"uvicorn died:\n{server.output_tail()}")
            verify_message(port, "uvicorn: ")


# -- Redis -----------------------------------------------------------------------


def redis_cli(port: int, *args: str, check: bool = True) -> str:
    """What ``redis-cli`` printed for command ``args`` to the Redis on ``port``."""
    argv = ["redis-cli", "-h", HOST, "-p", str(port), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    if check and done.returncode != 0:
        raise BenchmarkError(f"{' '.join(argv)}: {done.stdout}{done.stderr}")
    return done.stdout


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[ServerProcess]:
    """A ``redis-server`` of its own on ``HOST`` (a free port, no persistence,
    files in ``workdir``), once it answers ``PING``; stopped on any exit."""
    port, output = free_port(), workdir / "redis.out"
    argv = ["redis-server", "--port", str(port), "--bind", HOST, "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(workdir)]
    server = ServerProcess(port, start_process(argv, workdir, output), output)
    try:
        deadline = time.monotonic() + 10
        while redis_cli(port, "PING", check=False).strip() != "PONG":
            if server.process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"no redis-server:\n{server.output_tail()}")
            time.sleep(0.05)
        yield server
    finally:
        server.exit_code = stop(server.process)


# -- pinning ---------------------------------------------------------------------


@dataclass(frozen=True)
class TwoCpus:
    """The first two CPUs this process may run on, and a ``taskset`` that works."""

    taskset: str
    server_cpu: int
    """For the server."""
    other_cpu: int
    """For what loads it (the load generator, the clients)."""

    def taskset_argv(self, cpu: int) -> list[str]:
        """The prefix of a command line that runs it on ``cpu``."""
        return [self.taskset, "-c", str(cpu)]


def find_two_cpus() -> TwoCpus | str:
    """Two CPUs to pin to, or, if there are none, the pinning's description."""
    taskset = shutil.which("taskset")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if taskset is None or len(cpus) < 2:
        why = "taskset not found" if taskset is None else "fewer than 2 CPUs"
        return f"not pinned ({why})"
    two = TwoCpus(taskset, cpus[0], cpus[1])
    probe = subprocess.run(
        [*two.taskset_argv(two.server_cpu), "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return "not pinned (taskset failed)"
    return two


# -- measuring and reporting -----------------------------------------------------

T = TypeVar("T")


def interleaved(
    subjects: Sequence[T], rounds: int, reverse_first: bool = False
) -> list[T]:
    """``rounds`` passes over ``subjects``, every other one reversed (a b c c b a a b
    c ...; c b a a b c ... with ``reverse_first``): the order of short alternating
    slices, so that a machine's slow phases hit every subject alike."""
    forward, backward = list(subjects), list(reversed(subjects))
    order: list[T] = []
    for index in range(rounds):
        order += backward if (index % 2 == 0) == reverse_first else forward
    return order


@dataclass(frozen=True)
class Clocks:
    """Wall-clock time, this process's CPU time (all its threads) and, if given a
    pid whose /proc entry is readable, that process's CPU time, in seconds.

    ``Clocks.read(pid)`` at both ends of a window; their difference
    (``after - before``) is the window's length and CPU use."""

    wall: float
    cpu: float
    other_cpu: float | None = None

    @classmethod
    def read(cls, pid: int | None = None) -> Clocks:
        other = None if pid is None else process_cpu_seconds(pid)
        return cls(time.perf_counter(), time.process_time(), other)

    def __sub__(self, earlier: Clocks) -> Clocks:
        other = None
        if self.other_cpu is not None and earlier.other_cpu is not None:
            other = self.other_cpu - earlier.other_cpu
        return Clocks(self.wall - earlier.wall, self.cpu - earlier.cpu, other)


def percentile_ms(ordered: Sequence[float], p: float) -> float:
    """The ``p``th percentile of sorted seconds, in ms (NaN if there are none)."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1e3


def median_or_none(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def package_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment(*packages: str) -> dict[str, Any]:
    """Python, trio and the versions of ``packages`` (keyed with "_" for "-"), the
    CPU count and the platform."""
    return {
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "trio": trio.__version__,
        **{p.replace("-", "_"): package_version(p) for p in packages},
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }


def exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """A SIGTERM handler: unwind normally, so every server still running is
    stopped."""
    raise SystemExit(128 + signum)


def non_matching_fault_rules(count: int) -> list[dict[str, Any]]:
    """``count`` fault rules (``POST /faults`` bodies) none of which matches
    ``GET /msg``: 40% exact paths, 30% globs, 30% scoped to scopes no load sends."""
    rules = []
    for index in range(count):
        kind = index % 10
        if kind < 4:
            match = {"path": f"/api/v1/items/{index}"}
        elif kind < 7:
            match = {"path": f"/other/{index}/*"}
        else:
            match = {"scope": f"bench-{index}"}
        rules.append({"match": match, "action": {"status": 503}})
    return rules
