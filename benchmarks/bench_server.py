"""Throughput and latency of the test server's ``GET /msg``, next to two baselines.

Run::

    python benchmarks/bench_server.py [--quick] [--json PATH] [--duration S]
                                      [--connections N]

Five servers answer ``GET /msg`` with ``{"message_id": "<uuid4>"}``, each started as
its own subprocess on 127.0.0.1 (a free port), one at a time:

* ``ours``: ``python -m trio_resilience serve`` with its default settings and INFO
  JSON logging to a file in a temporary directory (``SERVER_LOG_FILE``);
* ``ours_faulted``: the same, with 100 live fault rules that never match
  ``GET /msg`` (40 exact paths, 30 globs, 30 scoped rules; `add_fault_rules`), so
  the rule check and the request journal (always on) run on the hot path;
* ``ours_no_metrics``: ``ours`` with its Prometheus metrics off
  (``SERVER_METRICS_ENABLED=false``: no per-request counting, no ``/metrics``);
* ``bare_quart``: a bare `quart_trio.QuartTrio` app with that one route
  (``benchmarks/_baselines.py``);
* ``raw_asgi``: a raw ASGI callable, no framework (``benchmarks/_baselines.py``).

All five run on Hypercorn's trio worker (``hypercorn.trio.serve`` inside
``trio.run``, one process, access log off). The load generator is ``wrk`` (one
thread, ``--latency``), or a Python one if ``wrk`` is not installed. With ``taskset``
and two CPUs, the server is pinned to the first CPU and the load generator to the
second.

Every measured run gets a fresh server process: it is started, checked (``GET /msg``
must answer 200 with a UUID4), warmed up for ``--warmup`` seconds, measured for
``--duration`` seconds, then stopped with SIGTERM (SIGKILL if it lingers). Servers
are interleaved round-robin, one run each per round, in a rotating order.

``raw_asgi`` is also the load generator's headroom check: if it reaches a clearly
higher rate than the others with the same generator, connections and pinning,
the generator is not what limits them.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from _common import (
    HOST,
    PATH,
    REPO_ROOT,
    WIDTH,
    BenchmarkError,
    ServerProcess,
    environment,
    exit_on_sigterm,
    find_two_cpus,
    free_port,
    median_or_none,
    non_matching_fault_rules,
    percent,
    percentile_ms,
    process_cpu_seconds,
    start_process,
    stopped_on_exit,
    verify_message,
)

CONNECTIONS = 50
FULL_DURATION = 10
FULL_REPEATS = 3
QUICK_DURATION = 3
QUICK_REPEATS = 1
WARMUP = 2
TARGET_VS_BARE_QUART = 0.85
TARGET_FAULTED_VS_OURS = 0.9
"""100 non-matching fault rules may cost at most 10%."""
TARGET_FAULTED_VS_BARE_QUART = 0.9
TARGET_METRICS_ON_VS_OFF = 0.95
"""The metrics may cost at most 5%."""
FAULT_RULES = 100
HEADROOM_CLEAR = 1.2
"""raw_asgi at least this much faster than the others counts as clear headroom."""
GENERATOR_BUSY = 0.7
"""A load generator using less of its CPU than this is not the bottleneck."""

WRK_TIMEOUT = "5s"

OURS = "ours"
OURS_FAULTED = "ours_faulted"
OURS_NO_METRICS = "ours_no_metrics"
BARE_QUART = "bare_quart"
RAW_ASGI = "raw_asgi"


# -- the servers -----------------------------------------------------------------


@dataclass(frozen=True)
class ServerSpec:
    name: str
    description: str
    fault_rules: int = 0
    """Non-matching fault rules added once the server is up."""
    metrics: bool = True
    """Ours only: False sets ``SERVER_METRICS_ENABLED=false``."""

    def launch(self, port: int, workdir: Path, run_no: int) -> Launch:
        python = sys.executable
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERVER_")}
        if self.name in (OURS, OURS_FAULTED, OURS_NO_METRICS):
            log_file = workdir / f"{self.name}-{run_no}.log"
            env["SERVER_LOG_FILE"] = str(log_file)
            if not self.metrics:
                env["SERVER_METRICS_ENABLED"] = "false"
            argv = [
                python,
                "-m",
                "trio_resilience",
                "serve",
                "--host",
                HOST,
                "--port",
                str(port),
                "--log-level",
                "INFO",
                "--log-format",
                "json",
            ]
            # Run in the temporary directory, so no stray .env file is read.
            return Launch(argv, env, workdir, log_file)
        app = {BARE_QUART: "quart_app", RAW_ASGI: "raw_asgi_app"}[self.name]
        argv = [python, "-m", "benchmarks._baselines", app, "--port", str(port)]
        return Launch(argv, env, REPO_ROOT, None)


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    log_file: Path | None


SERVERS = [
    ServerSpec(
        OURS,
        "python -m trio_resilience serve, default settings, INFO JSON log to a file",
    ),
    ServerSpec(
        OURS_FAULTED,
        f"ours, plus {FAULT_RULES} live fault rules none of which matches GET /msg",
        fault_rules=FAULT_RULES,
    ),
    ServerSpec(
        OURS_NO_METRICS,
        "ours, with SERVER_METRICS_ENABLED=false (no counting, no /metrics)",
        metrics=False,
    ),
    ServerSpec(BARE_QUART, "QuartTrio app, one route, no middleware, no logging"),
    ServerSpec(RAW_ASGI, "raw ASGI callable, no framework, no logging"),
]


@dataclass
class RunningServer(ServerProcess):
    spec: ServerSpec
    log_file: Path | None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{PATH}"


def add_fault_rules(port: int, count: int) -> None:
    """Add `non_matching_fault_rules` to the server on ``port``."""
    for body in non_matching_fault_rules(count):
        rule = json.dumps(body)
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        try:
            conn.request("POST", "/faults", rule, {"Content-Type": "application/json"})
            response = conn.getresponse()
            if response.status != 201:
                raise BenchmarkError(f"POST /faults: {response.status}")
            response.read()
        finally:
            conn.close()


@contextlib.contextmanager
def running_server(
    spec: ServerSpec, workdir: Path, run_no: int, pin: list[str]
) -> Iterator[RunningServer]:
    port = free_port()
    launch = spec.launch(port, workdir, run_no)
    output = workdir / f"{spec.name}-{run_no}.out"
    process = start_process([*pin, *launch.argv], launch.cwd, output, launch.env)
    server = RunningServer(port, process, output, spec=spec, log_file=launch.log_file)
    with stopped_on_exit(server, spec.name):
        yield server


# -- load generators -------------------------------------------------------------


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    generator_cpu: float | None = None
    """CPU time of the load generator over the run, as a fraction of one CPU."""

    @property
    def error_count(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _wrk_time_ms(output: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    if match is None:
        raise BenchmarkError(f"no {percentile}% latency in wrk output:\n{output}")
    return float(match[1]) * _TIME_UNITS_MS[match[2]]


def parse_wrk(output: str) -> LoadResult:
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    total = re.search(r"^\s*(\d+) requests in ", output, re.M)
    if rate is None or total is None:
        raise BenchmarkError(f"cannot parse the wrk output:\n{output}")
    result = LoadResult(
        requests_per_s=float(rate[1]),
        p50_ms=_wrk_time_ms(output, "50"),
        p99_ms=_wrk_time_ms(output, "99"),
        requests=int(total[1]),
    )
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if errors is not None:
        kinds = ("connect", "read", "write", "timeout")
        counts = {k: int(v) for k, v in zip(kinds, errors.groups(), strict=True)}
        result.socket_errors = {k: v for k, v in counts.items() if v}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx is not None:
        result.non_2xx = int(non_2xx[1])
    return result


def wrk_version() -> str:
    completed = subprocess.run(
        ["wrk", "-v"], capture_output=True, text=True, check=False
    )
    first = (completed.stdout or completed.stderr).splitlines()
    match = re.search(r"wrk (\S+)", first[0]) if first else None
    return match[1] if match else "unknown version"


@dataclass(frozen=True)
class LoadGenerator:
    kind: str  # "wrk" or "python"
    description: str
    pin: list[str]

    def run(self, port: int, connections: int, duration: int) -> LoadResult:
        if self.kind == "wrk":
            argv = [
                *self.pin,
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{duration}s",
                f"--timeout={WRK_TIMEOUT}",
                "--latency",
                f"http://{HOST}:{port}{PATH}",
            ]
        else:
            argv = [
                *self.pin,
                sys.executable,
                str(Path(__file__).resolve()),
                "--internal-load-generator",
                str(port),
                "--connections",
                str(connections),
                "--duration",
                str(duration),
            ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        completed = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=duration + 60
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if completed.returncode != 0:
            raise BenchmarkError(
                f"{argv[len(self.pin)]} failed with code {completed.returncode}:\n"
                f"{completed.stdout}{completed.stderr}"
            )
        if self.kind == "wrk":
            result = parse_wrk(completed.stdout)
        else:
            result = LoadResult(**json.loads(completed.stdout))
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        result.generator_cpu = cpu / wall
        return result


# -- the Python load generator (used when wrk is missing) ---------------------------


class _ProtocolError(Exception):
    pass


async def _read_response(
    stream: trio.SocketStream, buffer: bytearray
) -> tuple[int, bytearray]:
    """One HTTP/1.1 response with a Content-Length; returns (status, leftover)."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        data = await stream.receive_some(65536)
        if not data:
            raise _ProtocolError("connection closed")
        buffer += data
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = None
    for line in head[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    if length is None:
        raise _ProtocolError("response without Content-Length")
    needed = end + 4 + length
    while len(buffer) < needed:
        data = await stream.receive_some(65536)
        if not data:
            raise _ProtocolError("connection closed")
        buffer += data
    return status, buffer[needed:]


async def _python_load(port: int, connections: int, duration: int) -> dict[str, Any]:
    """``connections`` keep-alive connections, each sending requests back to back."""
    request = f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    latencies: list[float] = []
    counts = {"non_2xx": 0, "connect": 0, "read": 0}
    clock = time.perf_counter

    async def client() -> None:
        try:
            stream = await trio.open_tcp_stream(HOST, port)
        except OSError:
            counts["connect"] += 1
            return
        buffer = bytearray()
        async with stream:
            while True:
                start = clock()
                try:
                    await stream.send_all(request)
                    status, buffer = await _read_response(stream, buffer)
                except (OSError, trio.BrokenResourceError, _ProtocolError):
                    counts["read"] += 1
                    return
                latencies.append(clock() - start)
                if not 200 <= status < 400:
                    counts["non_2xx"] += 1

    start = clock()
    with trio.move_on_after(duration):
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(client)
    elapsed = clock() - start
    ordered = sorted(latencies)
    return {
        "requests_per_s": len(ordered) / elapsed,
        "p50_ms": percentile_ms(ordered, 50),
        "p99_ms": percentile_ms(ordered, 99),
        "requests": len(ordered),
        "non_2xx": counts["non_2xx"],
        "socket_errors": {k: counts[k] for k in ("connect", "read") if counts[k]},
    }


# -- pinning ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    server: list[str]
    generator: list[str]
    description: str

    @property
    def pinned(self) -> bool:
        return bool(self.server)


def choose_pinning() -> Pinning:
    """Server on the first allowed CPU, load generator on the second (taskset)."""
    cpus = find_two_cpus()
    if isinstance(cpus, str):
        return Pinning([], [], cpus)
    server_cpu, generator_cpu = cpus.server_cpu, cpus.other_cpu
    # This script only waits while a run is measured; keep it off the server's CPU.
    os.sched_setaffinity(0, {generator_cpu})
    return Pinning(
        cpus.taskset_argv(server_cpu),
        cpus.taskset_argv(generator_cpu),
        f"server on CPU {server_cpu}, load generator on CPU {generator_cpu} (taskset)",
    )


def choose_load_generator(wanted: str, pinning: Pinning) -> tuple[LoadGenerator, str]:
    """The generator and a note on why it was chosen."""
    has_wrk = shutil.which("wrk") is not None
    if wanted == "wrk" and not has_wrk:
        raise BenchmarkError("wrk is not installed (apt-get install wrk)")
    if wanted != "python" and has_wrk:
        description = f"wrk {wrk_version()} (1 thread, --latency)"
        return LoadGenerator("wrk", description, pinning.generator), ""
    note = (
        "wrk is not installed: using the Python load generator instead "
        "(apt-get install wrk for the real figures)"
        if wanted == "auto"
        else "Python load generator requested with --load-generator python"
    )
    description = "python (trio, raw HTTP/1.1 keep-alive, one task per connection)"
    return LoadGenerator("python", description, pinning.generator), note


# -- measuring -------------------------------------------------------------------


@dataclass
class Sample:
    load: LoadResult
    exit_code: int | None
    log_lines: int | None = None
    log_problems: int | None = None
    server_cpu: float | None = None
    """CPU time of the server over the measured run, as a fraction of one CPU."""
    checked_requests: int = 0
    """Requests of the warm-up, the measured run and the checks."""


@dataclass
class Subject:
    spec: ServerSpec
    samples: list[Sample] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def rates(self) -> list[float]:
        return [s.load.requests_per_s for s in self.samples]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def count_log_lines(path: Path | None) -> tuple[int | None, int | None]:
    """Request lines in the server's JSON log, and lines at WARNING or above."""
    if path is None or not path.exists():
        return None, None
    requests = problems = 0
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if '"event": "request"' in line:
                requests += 1
            if re.search(r'"level": "(warning|error|critical|exception)"', line):
                problems += 1
    return requests, problems


def measure_once(
    spec: ServerSpec,
    workdir: Path,
    run_no: int,
    pinning: Pinning,
    generator: LoadGenerator,
    args: argparse.Namespace,
) -> Sample:
    with running_server(spec, workdir, run_no, pinning.server) as server:
        verify_message(server.port, f"{spec.name}: ")
        if spec.fault_rules:
            add_fault_rules(server.port, spec.fault_rules)
        warmup = generator.run(server.port, args.connections, args.warmup)
        cpu_before = process_cpu_seconds(server.process.pid)
        start = time.perf_counter()
        load = generator.run(server.port, args.connections, args.duration)
        wall = time.perf_counter() - start
        cpu_after = process_cpu_seconds(server.process.pid)
        if server.process.poll() is not None:
            raise BenchmarkError(
                f"{spec.name} died during the run:\n{server.output_tail()}"
            )
        verify_message(server.port, f"{spec.name}: ")
    log_lines, log_problems = count_log_lines(server.log_file)
    if server.log_file is not None and server.log_file.exists():
        server.log_file.unlink()  # one run's log can be tens of MB
    server_cpu = None
    if cpu_before is not None and cpu_after is not None:
        server_cpu = (cpu_after - cpu_before) / wall
    # /health (readiness), /msg before and after, the warm-up and the run itself.
    checked = 3 + warmup.requests + load.requests
    return Sample(load, server.exit_code, log_lines, log_problems, server_cpu, checked)


def run_benchmark(
    args: argparse.Namespace, pinning: Pinning, generator: LoadGenerator
) -> list[Subject]:
    subjects = [Subject(spec) for spec in SERVERS]
    total = args.repeats * len(subjects)
    run_no = 0
    with tempfile.TemporaryDirectory(prefix="bench_server-") as tmp:
        workdir = Path(tmp)
        for round_no in range(args.repeats):
            # Rotate the order each round, so no server always runs first.
            shift = round_no % len(subjects)
            for subject in subjects[shift:] + subjects[:shift]:
                run_no += 1
                sample = measure_once(
                    subject.spec, workdir, run_no, pinning, generator, args
                )
                subject.samples.append(sample)
                load = sample.load
                errors = f", {load.error_count} errors" if load.error_count else ""
                print(
                    f"  [{run_no}/{total}] {subject.name:<15} "
                    f"{load.requests_per_s:>9,.0f} req/s  p50 {load.p50_ms:6.2f} ms  "
                    f"p99 {load.p99_ms:6.2f} ms{errors}",
                    file=sys.stderr,
                    flush=True,
                )
    return subjects


# -- reporting -------------------------------------------------------------------


def build_results(subjects: Sequence[Subject]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    for s in subjects:
        loads = [sample.load for sample in s.samples]
        socket_errors: dict[str, int] = {}
        for load in loads:
            for kind, count in load.socket_errors.items():
                socket_errors[kind] = socket_errors.get(kind, 0) + count
        result: dict[str, Any] = {
            "name": s.name,
            "description": s.spec.description,
            "unit": "req/s",
            "median": s.median,
            "min": min(s.rates),
            "max": max(s.rates),
            "p50_ms": statistics.median(load.p50_ms for load in loads),
            "p99_ms": statistics.median(load.p99_ms for load in loads),
            "repeats": len(loads),
            "samples": s.rates,
            "requests": sum(load.requests for load in loads),
            "non_2xx": sum(load.non_2xx for load in loads),
            "socket_errors": socket_errors,
            "exit_codes": [sample.exit_code for sample in s.samples],
            "server_cpu": median_or_none(sample.server_cpu for sample in s.samples),
            "generator_cpu": median_or_none(load.generator_cpu for load in loads),
        }
        if any(sample.log_lines is not None for sample in s.samples):
            result["log_request_lines"] = sum(
                sample.log_lines or 0 for sample in s.samples
            )
            result["log_warning_lines"] = sum(
                sample.log_problems or 0 for sample in s.samples
            )
            result["requests_including_warmup"] = sum(
                sample.checked_requests for sample in s.samples
            )
        results.append(result)
    return results


def build_ratios(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    median = {r["name"]: r["median"] for r in results}
    return {
        "server_vs_bare_quart": median[OURS] / median[BARE_QUART],
        "faulted_vs_ours": median[OURS_FAULTED] / median[OURS],
        "faulted_vs_bare_quart": median[OURS_FAULTED] / median[BARE_QUART],
        "bare_quart_vs_raw_asgi": median[BARE_QUART] / median[RAW_ASGI],
        "metrics_on_vs_off": median[OURS] / median[OURS_NO_METRICS],
    }


def headroom_text(results: Sequence[dict[str, Any]]) -> list[str]:
    by_name = {r["name"]: r for r in results}
    raw = by_name[RAW_ASGI]
    others = max(by_name[OURS]["median"], by_name[BARE_QUART]["median"])
    headroom = raw["median"] / others
    generator_cpu = raw["generator_cpu"]
    text = (
        f"Load generator headroom: raw_asgi reached {raw['median']:,.0f} req/s, "
        f"{headroom:.2f}x the faster of ours and bare_quart, with the same generator, "
        "connection count and pinning"
    )
    if generator_cpu is not None:
        text += (
            f"; against raw_asgi the generator used {percent(generator_cpu)} of its "
            f"CPU, the server {percent(raw['server_cpu'])} of its own."
        )
    else:
        text += "."
    idle_generator = generator_cpu is not None and generator_cpu < GENERATOR_BUSY
    if headroom >= HEADROOM_CLEAR or idle_generator:
        text += (
            " The generator can go faster than ours and bare_quart ran, so it is not "
            "what limits them: their figures are the servers' own."
        )
    else:
        text += (
            f" WARNING: raw_asgi is less than {HEADROOM_CLEAR}x faster and the "
            "generator was busy: it may be what limits all three, and the ratios may "
            "then not be the servers' own."
        )
    return textwrap.wrap(text, WIDTH)


def format_table(
    results: Sequence[dict[str, Any]],
    ratios: dict[str, float],
    env: dict[str, Any],
    meta: dict[str, Any],
) -> str:
    first = results[0]
    lines = [
        f"trio_resilience server: GET {PATH}, {meta['connections']} connections, "
        f"{first['repeats']} x {meta['duration_s']} s measured runs per server",
        f"(each after {meta['warmup_s']} s of warm-up, on a fresh server process; "
        "servers interleaved)",
        f"Python {env['python']}, trio {env['trio']}, hypercorn {env['hypercorn']}, "
        f"quart {env['quart']}, quart-trio {env['quart_trio']}, "
        f"{env['cpu_count']} CPUs",
        f"load generator: {meta['load_generator']}",
        f"pinning: {meta['pinning']}",
    ]
    if meta["note"]:
        lines.append(f"NOTE: {meta['note']}")
    lines.append("")
    header = (
        f"{'server':<15} {'median':>8} {'min':>8} {'max':>8} {'spread':>7} "
        f"{'p50':>7} {'p99':>7} {'x raw':>6} {'srv CPU':>8} {'gen CPU':>8}"
    )
    units = (
        f"{'':<15} {'req/s':>8} {'req/s':>8} {'req/s':>8} {'':>7} {'ms':>7} {'ms':>7}"
    )
    lines += [header, units, ""]
    raw = next(r["median"] for r in results if r["name"] == RAW_ASGI)
    for r in results:
        spread = (r["max"] - r["min"]) / r["median"] * 100
        lines.append(
            f"{r['name']:<15} {r['median']:>8,.0f} {r['min']:>8,.0f} {r['max']:>8,.0f} "
            f"{spread:>6.1f}% {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
            f"{r['median'] / raw:>5.2f}x {percent(r['server_cpu']):>8} "
            f"{percent(r['generator_cpu']):>8}"
        )

    def verdict(ratio: float, target: float) -> str:
        return f"(target >= {target}: {'met' if ratio >= target else 'NOT met'})"

    faulted, faulted_quart = ratios["faulted_vs_ours"], ratios["faulted_vs_bare_quart"]
    metrics = ratios["metrics_on_vs_off"]
    lines += [
        "",
        f"ours / bare_quart      = {ratios['server_vs_bare_quart']:.3f}   "
        + verdict(ratios["server_vs_bare_quart"], TARGET_VS_BARE_QUART),
        f"ours_faulted / ours    = {faulted:.3f}   "
        + verdict(faulted, TARGET_FAULTED_VS_OURS),
        f"ours_faulted / bare_q. = {faulted_quart:.3f}   "
        + verdict(faulted_quart, TARGET_FAULTED_VS_BARE_QUART),
        f"bare_quart / raw_asgi  = {ratios['bare_quart_vs_raw_asgi']:.3f}   "
        "(what Quart itself costs)",
        f"ours / ours_no_metrics = {metrics:.3f}   "
        + verdict(metrics, TARGET_METRICS_ON_VS_OFF),
        "",
        *headroom_text(results),
        "",
    ]
    problems = []
    for r in results:
        if r["non_2xx"]:
            problems.append(f"{r['name']}: {r['non_2xx']} non-2xx/3xx responses")
        if r["socket_errors"]:
            errors = ", ".join(f"{k} {v}" for k, v in r["socket_errors"].items())
            problems.append(f"{r['name']}: socket errors: {errors}")
        if any(code != 0 for code in r["exit_codes"]):
            problems.append(f"{r['name']}: exit codes on SIGTERM {r['exit_codes']}")
        if r.get("log_warning_lines"):
            problems.append(
                f"{r['name']}: {r['log_warning_lines']} WARNING/ERROR log lines"
            )
    if problems:
        lines.append("PROBLEMS:")
        lines += [f"  {p}" for p in problems]
    else:
        lines.append(
            "Errors: none (no non-2xx responses, no socket errors, every server "
            "exited 0 on SIGTERM)."
        )
    for r in results:
        if "log_request_lines" in r:
            lines += textwrap.wrap(
                f"{r['name']} logged {r['log_request_lines']:,} JSON request lines for "
                f"{r['requests_including_warmup']:,} requests completed by the "
                "generator (warm-ups and checks included; requests still in flight "
                "when a run ends are logged but not counted).",
                WIDTH,
            )
    lines += ["", "What each line measures:"]
    lines += [f"  {r['name']:<15} {r['description']}" for r in results]
    lines += [
        "",
        "median/min/max: of the measured runs' requests/s; p50, p99, srv CPU and gen "
        "CPU: medians",
        "over the runs; x raw: median over raw_asgi's; srv/gen CPU: CPU time of the "
        "server and of",
        "the load generator during a measured run, as a share of one CPU.",
    ]
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Measure requests/s and p50/p99 latency of GET /msg on the test server, "
            "a bare Quart-Trio app and a raw ASGI app."
        )
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            f"{QUICK_REPEATS} run of {QUICK_DURATION} s per server instead of "
            f"{FULL_REPEATS} of {FULL_DURATION} s (a smoke test, not a measurement)"
        ),
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the results as JSON"
    )
    parser.add_argument(
        "--duration",
        type=int,
        metavar="S",
        help="whole seconds per measured run (overrides --quick)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=CONNECTIONS,
        metavar="N",
        help=f"concurrent keep-alive connections (default {CONNECTIONS})",
    )
    parser.add_argument(
        "--repeats", type=int, help="measured runs per server (overrides --quick)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=WARMUP,
        metavar="S",
        help=f"whole seconds of unmeasured load before each run (default {WARMUP})",
    )
    parser.add_argument(
        "--load-generator",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="wrk, the Python fallback, or auto: wrk if installed (default)",
    )
    parser.add_argument(
        "--internal-load-generator", type=int, metavar="PORT", help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = QUICK_DURATION if args.quick else FULL_DURATION
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else FULL_REPEATS
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    if args.warmup < 1:
        parser.error("--warmup must be at least 1")
    if args.connections < 1:
        parser.error("--connections must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.internal_load_generator is not None:
        document = trio.run(
            _python_load, args.internal_load_generator, args.connections, args.duration
        )
        print(json.dumps(document))
        return 0
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        pinning = choose_pinning()
        generator, note = choose_load_generator(args.load_generator, pinning)
        if note:
            print(f"NOTE: {note}", file=sys.stderr)
        subjects = run_benchmark(args, pinning, generator)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every server was stopped", file=sys.stderr)
        return 130
    results = build_results(subjects)
    ratios = build_ratios(results)
    env = environment("hypercorn", "quart", "quart-trio")
    meta: dict[str, Any] = {
        "load_generator": generator.description,
        "pinned": pinning.pinned,
        "pinning": pinning.description,
        "connections": args.connections,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "note": note,
    }
    print()
    print(format_table(results, ratios, env, meta))
    if args.json is not None:
        document = {
            "benchmark": "server",
            **env,
            **meta,
            "results": results,
            "ratios": ratios,
            "target_server_vs_bare_quart": TARGET_VS_BARE_QUART,
            "target_faulted_vs_ours": TARGET_FAULTED_VS_OURS,
            "target_faulted_vs_bare_quart": TARGET_FAULTED_VS_BARE_QUART,
            "target_metrics_on_vs_off": TARGET_METRICS_ON_VS_OFF,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
