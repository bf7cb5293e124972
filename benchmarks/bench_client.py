"""Requests/s of ``ResilientClient`` next to a raw ``httpx.AsyncClient``.

Run::

    python benchmarks/bench_client.py [--quick] [--json PATH] [--duration S]
                                      [--repeats N] [--pool {keepalive,httpx-default}]

One fast server (the raw ASGI app of ``benchmarks/_baselines.py`` on Hypercorn's trio
worker) is started once, as a subprocess on 127.0.0.1; with ``taskset`` and two CPUs
it is pinned to the first CPU and this process (the clients) to the second, so client
and server do not share a CPU.

Two clients send ``GET /msg`` to it, at concurrency 1, 10 and 50:

* ``resilient``: `trio_resilience.ResilientClient` (retry, circuit breaker, bulkhead,
  request id), configured so that none of them changes what happens on success: a
  bulkhead of 100 slots, per-attempt logging at DEBUG (below the unconfigured
  logger's effective level);
* ``httpx``: a raw `httpx.AsyncClient` with the same base URL, timeouts, redirect
  setting, User-Agent and connection pool.

Everything client-side runs inside one ``trio.run``. N worker tasks (N = the
concurrency) send requests back to back on one shared client. Each repeat opens a
fresh client of each kind, warms both up, then measures them in short slices that
alternate a, b, b, a, ... until each has had ``--duration`` seconds, so that the
slow phases of a shared machine hit both alike; a request counts if it completes
inside its client's window, and its latency is recorded. The figure of merit is the
ratio of the medians over the repeats, resilient / httpx (the target is >= 0.9).

If a ratio is below the target, the script profiles both clients at that
concurrency with cProfile and reports where ``trio_resilience`` spends its time per
request, and where the resilient client's extra time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import gc
import json
import os
import pstats
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
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
    percent,
    percentile_ms,
    process_cpu_seconds,
    start_process,
    stopped_on_exit,
    verify_message,
)

from trio_resilience import (
    BulkheadConfig,
    ClientConfig,
    LoggingConfig,
    ResilientClient,
    TimeoutConfig,
)

LIBRARY_DIR = REPO_ROOT / "trio_resilience"

CONCURRENCIES = (1, 10, 50)
FULL_DURATION = 5.0
FULL_REPEATS = 3
FULL_WARMUP = 0.5
QUICK_DURATION = 1.5
QUICK_REPEATS = 1
QUICK_WARMUP = 0.3
FULL_PROFILE_DURATION = 3.0
QUICK_PROFILE_DURATION = 1.0
SLICE = 0.5
"""Seconds of one measured slice; the two clients alternate slice by slice."""
SLICE_LEAD_IN = 0.15
"""Seconds each slice runs before its window opens (requests not yet counted)."""
STAGGER = 0.1
"""The workers of a window start spread evenly over this many seconds (see
`run_window`); it must stay below `SLICE_LEAD_IN`."""
BISTABLE = 2.0
"""Slice rates of one client and concurrency further apart than this factor mean
the client switched between a slow and a fast state (see `format_table`)."""
TARGET = 0.9

RESILIENT = "resilient"
HTTPX = "httpx"

USER_AGENT = "trio-resilience"
"""Both subjects send it (ResilientClient's default), so the requests match."""
TIMEOUT = TimeoutConfig()
"""ResilientClient's defaults (5 s connect, 30 s read/write, 10 s pool), for both."""
POOL_LIMITS = httpx.Limits(
    max_connections=100, max_keepalive_connections=100, keepalive_expiry=2.0
)
"""Every connection kept alive; idle ones dropped after 2 s, before Hypercorn's
5 s keep-alive timeout closes them (httpx's default expiry, 5 s, races with it)."""
MAX_CONCURRENCY = 100
ACQUISITION_TIMEOUT = 30.0
LOG_LEVEL = "DEBUG"

SERVER_CPU_BUSY = 0.9
"""A server using more of its CPU than this may be what limits both subjects."""
TOP_N = 10

STOP_GRACE = 10.0
"""Seconds the workers get to finish their last request after a run ends."""


# -- the server ------------------------------------------------------------------


@dataclass
class RunningServer(ServerProcess):
    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


SERVER_DESCRIPTION = (
    "raw_asgi (benchmarks/_baselines.py: raw ASGI app, no framework, no logging) on "
    "Hypercorn's trio worker, one process"
)


@contextlib.contextmanager
def running_server(pin: list[str]) -> Iterator[RunningServer]:
    """The raw ASGI app, started from the repository root; stopped on any exit."""
    port = free_port()
    argv = [sys.executable, "-m", "benchmarks._baselines", "raw_asgi_app"]
    argv += ["--host", HOST, "--port", str(port)]
    with tempfile.TemporaryDirectory(prefix="bench_client-") as tmp:
        output = Path(tmp) / "server.out"
        process = start_process([*pin, *argv], REPO_ROOT, output)
        with stopped_on_exit(RunningServer(port, process, output)) as server:
            verify_message(server.port)
            yield server
            if process.poll() is not None:
                raise BenchmarkError(
                    f"the server died during the benchmark:\n{server.output_tail()}"
                )
            verify_message(server.port)


# -- pinning ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pinning:
    server: list[str]
    client_cpu: int | None
    description: str

    @property
    def pinned(self) -> bool:
        return bool(self.server)

    def pin_this_process(self) -> None:
        if self.client_cpu is not None:
            os.sched_setaffinity(0, {self.client_cpu})


def choose_pinning() -> Pinning:
    """Server on the first allowed CPU, this process (the clients) on the second."""
    cpus = find_two_cpus()
    if isinstance(cpus, str):
        return Pinning([], None, cpus)
    server_cpu, client_cpu = cpus.server_cpu, cpus.other_cpu
    return Pinning(
        cpus.taskset_argv(server_cpu),
        client_cpu,
        f"server on CPU {server_cpu} (taskset), clients (this process) on CPU "
        f"{client_cpu} (sched_setaffinity)",
    )


# -- the subjects ----------------------------------------------------------------


class Getter(Protocol):
    async def get(self, url: str) -> httpx.Response: ...


@dataclass(frozen=True)
class Subject:
    name: str
    description: str

    @contextlib.asynccontextmanager
    async def open(self, base_url: str, pool: str) -> AsyncIterator[Getter]:
        """A fresh client of this kind, closed on exit."""
        transport = (
            httpx.AsyncHTTPTransport(limits=POOL_LIMITS)
            if pool == "keepalive"
            else None
        )
        if self.name == RESILIENT:
            config = ClientConfig(
                base_url=base_url,
                timeout=TIMEOUT,
                bulkhead=BulkheadConfig(
                    max_concurrency=MAX_CONCURRENCY,
                    acquisition_timeout=ACQUISITION_TIMEOUT,
                ),
                logging=LoggingConfig(level=LOG_LEVEL),
                user_agent=USER_AGENT,
            )
            async with ResilientClient(config, transport=transport) as client:
                yield client
            return
        async with httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(
                connect=TIMEOUT.connect,
                read=TIMEOUT.read,
                write=TIMEOUT.write,
                pool=TIMEOUT.pool,
            ),
            follow_redirects=True,
            headers={"User-Agent": USER_AGENT},
            transport=transport,
        ) as client:
            yield client


SUBJECTS = [
    Subject(
        RESILIENT,
        f"trio_resilience.ResilientClient: bulkhead {MAX_CONCURRENCY} slots, "
        f"logging at {LOG_LEVEL}, retry and breaker at their defaults",
    ),
    Subject(HTTPX, "raw httpx.AsyncClient, same base URL, timeouts, UA and pool"),
]


def pool_description(pool: str) -> str:
    if pool == "keepalive":
        return (
            "both clients get the same transport settings, "
            "httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=100, "
            "max_keepalive_connections=100, keepalive_expiry=2.0)), passed as "
            "transport= (ResilientClient has no limits= parameter): every connection "
            "is kept alive, and an idle one is dropped before the server's 5 s "
            "keep-alive timeout can close it under a request"
        )
    return (
        "httpx's default pool for both (max_connections=100, "
        "max_keepalive_connections=20, keepalive_expiry=5.0): above 20 concurrent "
        "requests, connections beyond the 20 kept alive are closed after their "
        "response and reopened, and an idle connection can race with the server's "
        "5 s keep-alive timeout"
    )


def config_description() -> str:
    return (
        f"ResilientClient: ClientConfig(base_url=..., bulkhead=BulkheadConfig("
        f"max_concurrency={MAX_CONCURRENCY}, acquisition_timeout="
        f"{ACQUISITION_TIMEOUT:g}), logging=LoggingConfig(level={LOG_LEVEL!r})), "
        "everything else at its default (3 attempts, breaker threshold 5, an "
        "X-Request-ID UUID4 per call); the bulkhead never limits below the tested "
        "concurrency, and DEBUG is below the effective level (WARNING) of the "
        "unconfigured 'resilient_client' logger, so per-attempt logging costs only "
        "an isEnabledFor check. Both clients: base_url, timeouts connect "
        f"{TIMEOUT.connect:g} s / read {TIMEOUT.read:g} s / write {TIMEOUT.write:g} s "
        f"/ pool {TIMEOUT.pool:g} s, follow_redirects=True, User-Agent "
        f"{USER_AGENT!r}."
    )


# -- measuring -------------------------------------------------------------------


@dataclass
class Tally:
    """What the measured windows of one client in one repeat add up to."""

    requests: int = 0
    elapsed: float = 0.0
    client_cpu: float = 0.0
    server_cpu: float | None = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    slice_rates: list[float] = field(default_factory=list)


@dataclass
class Sample:
    """One repeat of one client at one concurrency."""

    requests_per_s: float
    requests: int
    elapsed: float
    p50_ms: float
    p99_ms: float
    errors: Counter[str]
    client_cpu: float
    """CPU time of this process over the measured windows, as a share of one CPU."""
    server_cpu: float | None
    """CPU time of the server over the measured windows, as a share of one CPU."""
    slice_rates: list[float]

    @classmethod
    def from_tally(cls, tally: Tally) -> Sample:
        ordered = sorted(tally.latencies)
        server_cpu = tally.server_cpu
        return cls(
            requests_per_s=tally.requests / tally.elapsed,
            requests=tally.requests,
            elapsed=tally.elapsed,
            p50_ms=percentile_ms(ordered, 50),
            p99_ms=percentile_ms(ordered, 99),
            errors=tally.errors,
            client_cpu=tally.client_cpu / tally.elapsed,
            server_cpu=None if server_cpu is None else server_cpu / tally.elapsed,
            slice_rates=tally.slice_rates,
        )


@dataclass
class Series:
    subject: Subject
    concurrency: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.subject.name}_c{self.concurrency}"

    @property
    def rates(self) -> list[float]:
        return [s.requests_per_s for s in self.samples]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


async def run_window(
    client: Getter,
    concurrency: int,
    server: RunningServer,
    lead_in: float,
    window: float,
    tally: Tally | None,
    profiler: cProfile.Profile | None = None,
) -> None:
    """``concurrency`` workers on ``client``: ``lead_in`` s, then a measured window.

    The workers send ``GET /msg`` back to back. A request counts (in ``tally``) if it
    completes inside the window; once the window has closed the workers start no new
    request, and their last one is left to finish. With ``tally=None`` nothing is
    counted (a warm-up).

    The workers start spread over `STAGGER` seconds, not all at once: with httpcore
    1.0 a burst of N simultaneous requests on a pool of N idle connections can tip
    the pool into a slow state it then stays in (its per-event rescans of all
    connections cost more the more of them are idle, which keeps them idle longer),
    at c=50 about a third of the fast state's rate, for either client, at random.
    """
    clock = time.perf_counter
    measuring = False
    stopping = False

    async def worker(delay: float) -> None:
        await trio.sleep(delay)
        while not stopping:
            start = clock()
            try:
                response = await client.get(PATH)
            except Exception as error:  # counted, reported, never hidden
                if measuring and tally is not None:
                    tally.errors[type(error).__name__] += 1
                await trio.sleep(0.01)
                continue
            if measuring and tally is not None:
                if response.status_code == 200:
                    tally.latencies.append(clock() - start)
                else:
                    tally.errors[f"HTTP {response.status_code}"] += 1

    gc.collect()
    async with trio.open_nursery() as nursery:
        for i in range(concurrency):
            nursery.start_soon(worker, i * STAGGER / concurrency)
        await trio.sleep(lead_in)
        if tally is not None:
            counted = len(tally.latencies)
            server_before = process_cpu_seconds(server.process.pid)
            if profiler is not None:
                profiler.enable()
            cpu_before = time.process_time()
            measuring = True
            start = clock()
            await trio.sleep(window)
            measuring = False
            elapsed = clock() - start
            cpu_after = time.process_time()
            if profiler is not None:
                profiler.disable()
            server_after = process_cpu_seconds(server.process.pid)
            tally.requests += len(tally.latencies) - counted
            tally.slice_rates.append((len(tally.latencies) - counted) / elapsed)
            tally.elapsed += elapsed
            tally.client_cpu += cpu_after - cpu_before
            if (
                tally.server_cpu is None
                or server_before is None
                or server_after is None
            ):
                tally.server_cpu = None
            else:
                tally.server_cpu += server_after - server_before
        # Every worker finishes its last request (the nursery waits for them), but
        # not forever.
        stopping = True
        nursery.cancel_scope.deadline = trio.current_time() + STOP_GRACE
    if server.process.poll() is not None:
        raise BenchmarkError(f"the server died during a run:\n{server.output_tail()}")


def slice_order(repeat: int, slices: int) -> list[Subject]:
    """a, b, b, a, a, b, b, a, ... (b, a, a, b, ... in odd repeats)."""
    pattern = [*SUBJECTS, *SUBJECTS[::-1]]
    if repeat % 2:
        pattern = pattern[::-1]
    return [pattern[i % len(pattern)] for i in range(2 * slices)]


def slice_count(duration: float, slice_length: float) -> int:
    return max(1, round(duration / slice_length))


async def measure_repeat(
    concurrency: int, repeat: int, server: RunningServer, args: argparse.Namespace
) -> dict[str, Sample]:
    """One repeat: a fresh client of each kind, warmed up, then interleaved slices.

    Each client gets ``args.duration`` seconds of measured windows in all, cut into
    slices of about ``args.slice`` seconds that alternate between the two clients
    (a b b a ...), so a slow phase of the machine hits both alike. Each slice starts
    with a short lead-in whose requests are not counted until the window opens.
    """
    slices = slice_count(args.duration, args.slice)
    window = args.duration / slices
    tallies = {s.name: Tally() for s in SUBJECTS}
    async with contextlib.AsyncExitStack() as stack:
        clients = {
            s.name: await stack.enter_async_context(s.open(server.base_url, args.pool))
            for s in SUBJECTS
        }
        for subject in slice_order(repeat, 1)[:2]:
            await run_window(
                clients[subject.name], concurrency, server, args.warmup, 0.0, None
            )
        for subject in slice_order(repeat, slices):
            await run_window(
                clients[subject.name],
                concurrency,
                server,
                SLICE_LEAD_IN,
                window,
                tallies[subject.name],
            )
    return {name: Sample.from_tally(tally) for name, tally in tallies.items()}


async def run_benchmark(
    server: RunningServer, args: argparse.Namespace
) -> list[Series]:
    series: list[Series] = []
    total = args.repeats * len(CONCURRENCIES)
    run_no = 0
    for concurrency in CONCURRENCIES:
        by_subject = {s.name: Series(s, concurrency) for s in SUBJECTS}
        series += by_subject.values()
        for repeat in range(args.repeats):
            run_no += 1
            samples = await measure_repeat(concurrency, repeat, server, args)
            for name, sample in samples.items():
                by_subject[name].samples.append(sample)
            parts = []
            for name, sample in samples.items():
                errors = sum(sample.errors.values())
                note = f" ({errors} errors)" if errors else ""
                parts.append(
                    f"{name} {sample.requests_per_s:,.0f} req/s, p50 "
                    f"{sample.p50_ms:.2f} ms, CPU {percent(sample.client_cpu)}{note}"
                )
            ratio = samples[RESILIENT].requests_per_s / samples[HTTPX].requests_per_s
            print(
                f"  [{run_no}/{total}] c={concurrency:<3} {'; '.join(parts)}; "
                f"ratio {ratio:.3f}",
                file=sys.stderr,
                flush=True,
            )
    return series


# -- profiling -------------------------------------------------------------------

FuncKey = tuple[str, int, str]
RawStats = dict[FuncKey, tuple[int, int, float, float, dict[FuncKey, Any]]]


@functools.cache
def _is_library(key: FuncKey) -> bool:
    filename = key[0]
    if filename.startswith(("~", "<")):
        return False
    return Path(filename).resolve().is_relative_to(LIBRARY_DIR)


def _is_worker(key: FuncKey) -> bool:
    return key[2] == "worker" and Path(key[0]).resolve() == Path(__file__).resolve()


def _group(key: FuncKey) -> str:
    """The package a profiled function belongs to."""
    filename = key[0]
    if _is_library(key):
        return "trio_resilience"
    if filename == "~":
        return "builtins (C)"
    if filename.startswith("<attrs generated"):
        return "attrs-generated methods"
    parts = Path(filename).parts
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if Path(filename).resolve() == Path(__file__).resolve():
        return "this benchmark"
    return "stdlib"


def _where(key: FuncKey) -> str:
    filename, line, name = key
    if filename == "~":  # a builtin: the name says it all
        return name
    path = Path(filename)
    if _is_library(key):
        return f"{path.resolve().relative_to(REPO_ROOT)}:{line} {name}"
    parts = path.parts
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif not filename.startswith("<"):
        parts = parts[-2:]
    return f"{'/'.join(parts)}:{line} {name}"


@dataclass
class Profile:
    """One cProfile run of one client."""

    stats: RawStats
    total: float
    calls: int
    requests: int
    scale: float
    """Unprofiled CPU time per request / profiled: shrinks profiled times to real."""

    def per_request(self, seconds: float) -> float:
        """Profiled seconds -> µs per request."""
        return seconds / self.requests * 1e6

    def own(self, key: FuncKey) -> float:
        entry = self.stats.get(key)
        return 0.0 if entry is None else self.per_request(entry[2])

    def by_group(self) -> defaultdict[str, float]:
        groups: defaultdict[str, float] = defaultdict(float)
        for key, entry in self.stats.items():
            groups[_group(key)] += self.per_request(entry[2])
        return groups

    def resumptions(self) -> float:
        """How often a worker task is resumed per request (cProfile counts every
        resumption of a coroutine as a call)."""
        calls = sum(e[1] for k, e in self.stats.items() if _is_worker(k))
        return calls / self.requests


async def profile_subject(
    subject: Subject,
    concurrency: int,
    server: RunningServer,
    args: argparse.Namespace,
    unprofiled_us: float,
) -> Profile:
    # CPU time, not wall time: waiting in epoll for the server is not a cost.
    profiler = cProfile.Profile(time.process_time)
    tally = Tally()
    async with subject.open(server.base_url, args.pool) as client:
        await run_window(client, concurrency, server, args.warmup, 0.0, None)
        await run_window(
            client,
            concurrency,
            server,
            SLICE_LEAD_IN,
            args.profile_duration,
            tally,
            profiler=profiler,
        )
    if tally.requests == 0:
        raise BenchmarkError(f"no request completed while profiling {subject.name}")
    stats = pstats.Stats(profiler)
    raw: RawStats = stats.stats  # type: ignore[attr-defined]
    total: float = stats.total_tt  # type: ignore[attr-defined]
    calls: int = stats.total_calls  # type: ignore[attr-defined]
    scale = unprofiled_us / (total / tally.requests * 1e6)
    return Profile(raw, total, calls, tally.requests, scale)


def _function_rows(profile: Profile, keys: Sequence[FuncKey]) -> list[dict[str, Any]]:
    rows = []
    for key in keys:
        _cc, ncalls, own, cumulative, _callers = profile.stats[key]
        rows.append(
            {
                "function": _where(key),
                "calls_per_request": ncalls / profile.requests,
                "own_us_per_request": profile.per_request(own),
                "cumulative_us_per_request": profile.per_request(cumulative),
                "own_us_per_request_unprofiled": profile.per_request(own)
                * profile.scale,
            }
        )
    return rows


SUGGESTIONS: dict[str, str] = {
    "breaker_checkpoint": (
        "CircuitBreaker.admit (async with breaker, once per attempt) awaits "
        "checkpoint_if_cancelled and cancel_shielded_checkpoint: one more trip "
        "through the trio scheduler per request (see 'task resumptions' above; it "
        "shows as extra epoll and run-loop time), and every coroutine frame of the "
        "await chain is resumed once more for it. The client could call the "
        "synchronous admit_nowait()/ticket.settle() pair around the httpx call, "
        "which checkpoints anyway."
    ),
    "await_chain": (
        "The await chain get -> request -> _send_with_retries -> _send_in_bulkhead "
        "-> _send_through_breaker -> _send_once puts six coroutine frames above "
        "httpx, and each is resumed and suspended again on every scheduler "
        "resumption of the request: their own time in the table is mostly that. "
        "Binding get/post/... with functools.partialmethod(request, 'GET') and "
        "merging the bulkhead, breaker and send layers into one coroutine would "
        "remove most of them."
    ),
    "retry_policy": (
        "_send_with_retries builds a new retry policy per call (retry_context -> "
        "_RetryPolicy.build: make_matcher and the attrs validators), a closure, a "
        "_RetryLoop and an Attempt, although the first attempt usually succeeds. "
        "Building the policy once in __init__ (passing the per-call context another "
        "way), or sending the first attempt outside the retry loop and entering it "
        "only on a retryable error, would avoid that."
    ),
    "request_id": (
        "request() makes a str(uuid.uuid4()) and an httpx.Headers per call (and "
        "looks the header up in it), and httpx then merges those headers into the "
        "client's again. A cheaper id (e.g. formatting os.urandom(16) directly, or "
        "a per-client prefix plus a counter if it need not be a UUID4) and a plain "
        "dict of headers when the caller passed none would save part of it."
    ),
    "breaker_tickets": (
        "CircuitBreaker.__aenter__/__aexit__ keep a per-task ticket stack in a dict "
        "(current_task lookups, setdefault, pop); the breaker's decorator path "
        "keeps the ticket in a local instead, which the client could do too."
    ),
}
"""By estimated effect, largest first; shown when a function of theirs is listed."""

SUGGESTION_FOR: dict[tuple[str, str], str] = {
    ("_breaker.py", "admit"): "breaker_checkpoint",
    ("_client.py", "get"): "await_chain",
    ("_client.py", "_send_in_bulkhead"): "await_chain",
    ("_client.py", "_send_once"): "await_chain",
    ("_client.py", "_send_with_retries"): "retry_policy",
    ("_retry.py", "build"): "retry_policy",
    ("_retry.py", "retry_context"): "retry_policy",
    ("_client.py", "request"): "request_id",
    ("_breaker.py", "__aenter__"): "breaker_tickets",
    ("_breaker.py", "__aexit__"): "breaker_tickets",
}


def _suggestions(rows: Sequence[dict[str, Any]]) -> list[str]:
    found = set()
    for row in rows:
        location, _, name = row["function"].partition(" ")
        key = (Path(location.split(":")[0]).name, name)
        if key in SUGGESTION_FOR:
            found.add(SUGGESTION_FOR[key])
    return [text for name, text in SUGGESTIONS.items() if name in found]


async def profile_concurrency(
    concurrency: int,
    series: Sequence[Series],
    server: RunningServer,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Profile both clients at ``concurrency``: where the extra time per request
    of `ResilientClient` goes."""
    by_name = {s.subject.name: s for s in series if s.concurrency == concurrency}
    profiles: dict[str, Profile] = {}
    unprofiled: dict[str, float] = {}
    for subject in SUBJECTS:
        own = by_name[subject.name]
        # CPU µs per request without the profiler: client CPU share / rate.
        cpu = statistics.median(s.client_cpu for s in own.samples)
        unprofiled[subject.name] = cpu / own.median * 1e6
        profiles[subject.name] = await profile_subject(
            subject, concurrency, server, args, unprofiled[subject.name]
        )
    res, raw = profiles[RESILIENT], profiles[HTTPX]
    # One factor for both, so that work both do alike cancels out in the differences.
    res.scale = raw.scale = (res.scale + raw.scale) / 2
    library = [k for k in res.stats if _is_library(k)]
    by_own = sorted(library, key=lambda k: res.stats[k][2], reverse=True)[:TOP_N]
    by_cumulative = sorted(library, key=lambda k: res.stats[k][3], reverse=True)
    by_cumulative = by_cumulative[:TOP_N]
    res_groups, raw_groups = res.by_group(), raw.by_group()
    groups = [
        {
            "group": group,
            "resilient_us_per_request": res_groups[group],
            "httpx_us_per_request": raw_groups[group],
            "difference_us_per_request": res_groups[group] - raw_groups[group],
            "difference_us_per_request_unprofiled": res_groups[group] * res.scale
            - raw_groups[group] * raw.scale,
        }
        for group in sorted(
            res_groups.keys() | raw_groups.keys(),
            key=lambda g: res_groups[g] - raw_groups[g],
            reverse=True,
        )
    ]
    differences = sorted(
        res.stats.keys() | raw.stats.keys(),
        key=lambda k: res.own(k) - raw.own(k),
        reverse=True,
    )[:TOP_N]
    difference_rows = [
        {
            "function": _where(k),
            "resilient_own_us_per_request": res.own(k),
            "httpx_own_us_per_request": raw.own(k),
            "difference_us_per_request": res.own(k) - raw.own(k),
            "difference_us_per_request_unprofiled": res.own(k) * res.scale
            - raw.own(k) * raw.scale,
        }
        for k in differences
    ]
    own_rows = _function_rows(res, by_own)
    cumulative_rows = _function_rows(res, by_cumulative)
    return {
        "concurrency": concurrency,
        "profiler": "cProfile (timer: time.process_time)",
        "duration_s": args.profile_duration,
        "subjects": {
            name: {
                "requests": p.requests,
                "profiled_us_per_request": p.per_request(p.total),
                "unprofiled_cpu_us_per_request": unprofiled[name],
                "function_calls_per_request": p.calls / p.requests,
                "task_resumptions_per_request": p.resumptions(),
            }
            for name, p in profiles.items()
        },
        "unprofiled_per_profiled": res.scale,
        "library_own_us_per_request": res_groups["trio_resilience"],
        "library_own_us_per_request_unprofiled": res_groups["trio_resilience"]
        * res.scale,
        "by_package": groups,
        "top_own": own_rows,
        "top_cumulative": cumulative_rows,
        "top_differences": difference_rows,
        "suggestions": _suggestions(own_rows + cumulative_rows),
    }


async def run_all(
    server: RunningServer, args: argparse.Namespace
) -> tuple[list[Series], list[dict[str, Any]]]:
    series = await run_benchmark(server, args)
    ratios = build_ratios(series)
    profiles = []
    if not args.no_profile:
        for concurrency in CONCURRENCIES:
            if ratios[f"client_vs_httpx_c{concurrency}"] < TARGET:
                print(
                    f"  profiling both clients at c={concurrency} "
                    f"({args.profile_duration:g} s each)",
                    file=sys.stderr,
                    flush=True,
                )
                profiles.append(
                    await profile_concurrency(concurrency, series, server, args)
                )
    return series, profiles


# -- reporting -------------------------------------------------------------------


def build_results(series: Sequence[Series]) -> list[dict[str, Any]]:
    results = []
    for s in series:
        errors: Counter[str] = Counter()
        for sample in s.samples:
            errors.update(sample.errors)
        results.append(
            {
                "name": s.name,
                "description": s.subject.description,
                "unit": "req/s",
                "median": s.median,
                "min": min(s.rates),
                "max": max(s.rates),
                "p50_ms": statistics.median(x.p50_ms for x in s.samples),
                "p99_ms": statistics.median(x.p99_ms for x in s.samples),
                "repeats": len(s.samples),
                "concurrency": s.concurrency,
                "samples": s.rates,
                "slice_rates": [r for x in s.samples for r in x.slice_rates],
                "requests": sum(x.requests for x in s.samples),
                "errors": dict(errors),
                "client_cpu": statistics.median(x.client_cpu for x in s.samples),
                "server_cpu": median_or_none([x.server_cpu for x in s.samples]),
            }
        )
    return results


def is_bistable(result: dict[str, Any]) -> bool:
    rates = result["slice_rates"]
    return bool(min(rates) * BISTABLE < max(rates))


def upper_quartile(result: dict[str, Any]) -> float:
    rates: list[float] = result["slice_rates"]
    return statistics.quantiles(rates, n=4)[2] if len(rates) > 1 else rates[0]


def build_upper_quartile_ratios(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    by_name = {r["name"]: r for r in results}
    return {
        f"c{c}": upper_quartile(by_name[f"{RESILIENT}_c{c}"])
        / upper_quartile(by_name[f"{HTTPX}_c{c}"])
        for c in CONCURRENCIES
    }


def build_ratios(series: Sequence[Series]) -> dict[str, float]:
    median = {s.name: s.median for s in series}
    return {
        f"client_vs_httpx_c{c}": median[f"{RESILIENT}_c{c}"] / median[f"{HTTPX}_c{c}"]
        for c in CONCURRENCIES
    }


def format_table(
    results: Sequence[dict[str, Any]],
    ratios: dict[str, float],
    env: dict[str, Any],
    meta: dict[str, Any],
) -> str:
    first = results[0]
    lines = [
        f"trio_resilience client: GET {PATH}, concurrency "
        f"{', '.join(map(str, CONCURRENCIES))}; {first['repeats']} repeats per "
        f"concurrency, each {meta['duration_s']:g} s measured per client",
        f"(fresh clients each repeat, {meta['warmup_s']:g} s warm-up each, then "
        f"{meta['slices']} slices of {meta['slice_s']:.2g} s per client, alternating "
        f"{meta['order']}; a = resilient, b = httpx)",
        f"Python {env['python']}, trio {env['trio']}, httpx {env['httpx']}, httpcore "
        f"{env['httpcore']}, hypercorn {env['hypercorn']}, {env['cpu_count']} CPUs",
        f"server: {meta['server']}",
        f"pinning: {meta['pinning']}",
        "",
    ]
    lines += textwrap.wrap(f"pool: {meta['pool_description']}", WIDTH)
    lines += textwrap.wrap(f"config: {meta['config']}", WIDTH)
    lines.append("")
    header = (
        f"{'name':<15} {'median':>8} {'min':>8} {'max':>8} {'spread':>7} "
        f"{'p50':>7} {'p99':>7} {'cli CPU':>8} {'srv CPU':>8}"
    )
    units = (
        f"{'':<15} {'req/s':>8} {'req/s':>8} {'req/s':>8} {'':>7} {'ms':>7} {'ms':>7}"
    )
    lines += [header, units]
    for r in results:
        if r["name"].startswith(RESILIENT):
            lines.append("")
        spread = (r["max"] - r["min"]) / r["median"] * 100 if r["median"] else 0.0
        lines.append(
            f"{r['name']:<15} {r['median']:>8,.0f} {r['min']:>8,.0f} "
            f"{r['max']:>8,.0f} {spread:>6.1f}% {r['p50_ms']:>7.2f} "
            f"{r['p99_ms']:>7.2f} {percent(r['client_cpu']):>8} "
            f"{percent(r['server_cpu']):>8}"
        )
    lines.append("")
    for c in CONCURRENCIES:
        ratio = ratios[f"client_vs_httpx_c{c}"]
        verdict = "met" if ratio >= TARGET else "NOT met"
        paired = ", ".join(f"{x:.3f}" for x in meta["paired_ratios"][f"c{c}"])
        lines.append(
            f"resilient / httpx at c={c:<3} = {ratio:.3f}   "
            f"(target >= {TARGET}: {verdict}; per repeat: {paired})"
        )
    lines.append("")
    busy = [
        r["name"]
        for r in results
        if r["name"].startswith(HTTPX)
        and r["server_cpu"] is not None
        and r["server_cpu"] > SERVER_CPU_BUSY
    ]
    if busy:
        lines += textwrap.wrap(
            f"NOTE: the server used more than {percent(SERVER_CPU_BUSY)} of its CPU "
            f"for {', '.join(busy)}: it may be what limits httpx there, and the "
            "ratio then understates the client's overhead.",
            WIDTH,
        )
    else:
        lines += textwrap.wrap(
            "The server never used more than "
            f"{percent(SERVER_CPU_BUSY)} of its CPU for httpx, so it is not what "
            "limits the rates: at c=1 a rate is one round trip at a time (client and "
            "server time per request), above that the clients' CPU is the limit.",
            WIDTH,
        )
    by_name = {r["name"]: r for r in results}
    bistable = [r for r in results if is_bistable(r)]
    if bistable:
        ranges = ", ".join(
            f"{r['name']} {min(r['slice_rates']):,.0f}-{max(r['slice_rates']):,.0f}"
            for r in bistable
        )
        fast = "; ".join(
            f"at c={c}: resilient {upper_quartile(by_name[f'{RESILIENT}_c{c}']):,.0f}"
            f", httpx {upper_quartile(by_name[f'{HTTPX}_c{c}']):,.0f} req/s, ratio "
            f"{meta['upper_quartile_ratios'][f'c{c}']:.3f}"
            for c in sorted({r["concurrency"] for r in bistable})
        )
        pool_text = (
            " At c>1 it can also be httpcore 1.0's connection pool: a connection "
            "assigned to a request stays IDLE until the request starts on it, a trip "
            "through the scheduler later, so requests arriving meanwhile are all "
            "handed the same connection, all but one fail "
            "with ConnectionNotAvailable and queue again, and every pool event "
            "rescans every connection (AsyncConnectionPool."
            "_assign_requests_to_connections; encode/httpcore#1035, pydantic/"
            "httpx2#1075). The slower the client, the more requests arrive at once: "
            "once in that state it tends to stay, one client at a time, at random."
            if any(r["concurrency"] > 1 for r in bistable)
            else ""
        )
        lines += textwrap.wrap(
            f"NOTE: slice rates more than {BISTABLE:g}x apart ({ranges} req/s): the "
            "client switched between a slow and a fast state. It can be the machine: "
            "a shared VM's slow phases, which the alternating slices spread over both "
            f"clients.{pool_text} The ratio at that concurrency is then less "
            "certain; the upper quartiles of the slice rates compare the fast "
            f"states: {fast}.",
            WIDTH,
        )
    problems = [
        f"{r['name']}: {sum(r['errors'].values())} errors "
        f"({', '.join(f'{k} {v}' for k, v in r['errors'].items())})"
        for r in results
        if r["errors"]
    ]
    if meta["server_exit_code"] not in (0, None):
        problems.append(f"server exit code on SIGTERM: {meta['server_exit_code']}")
    if problems:
        lines.append("PROBLEMS:")
        lines += [f"  {p}" for p in problems]
    else:
        lines.append(
            "Errors: none (every counted response was a 200 for both clients; the "
            "server exited 0 on SIGTERM)."
        )
    lines += ["", "What each name measures:"]
    lines += [f"  {s.name:<10} {s.description}" for s in SUBJECTS]
    lines += [
        "",
        "median/min/max: of the repeats' requests/s (200 responses completed inside "
        "a client's",
        "measured slices / their total length); p50, p99, cli CPU and srv CPU: "
        "medians over the",
        "repeats; cli/srv CPU: CPU time of this process (the clients) and of the "
        "server during",
        "a client's slices, as a share of one CPU.",
    ]
    return "\n".join(lines)


def format_profile(profile: dict[str, Any]) -> str:
    c = profile["concurrency"]
    res, raw = profile["subjects"][RESILIENT], profile["subjects"][HTTPX]
    lines = [
        "",
        f"Profile at c={c} (cProfile on CPU time, {profile['duration_s']:g} s per "
        "client after warm-up; µs per request)",
        "",
    ]
    difference = (
        res["unprofiled_cpu_us_per_request"] - raw["unprofiled_cpu_us_per_request"]
    )
    text = (
        "Client CPU per request without the profiler (median CPU share / median "
        f"req/s): resilient {res['unprofiled_cpu_us_per_request']:.0f} µs, httpx "
        f"{raw['unprofiled_cpu_us_per_request']:.0f} µs, difference "
        f"{difference:.0f} µs. Under the profiler: "
        f"{res['profiled_us_per_request']:.0f} and "
        f"{raw['profiled_us_per_request']:.0f} µs ({res['requests']:,} and "
        f"{raw['requests']:,} requests), {res['function_calls_per_request']:.0f} and "
        f"{raw['function_calls_per_request']:.0f} function calls per request. Task "
        f"resumptions per request: {res['task_resumptions_per_request']:.2f} and "
        f"{raw['task_resumptions_per_request']:.2f} (cProfile counts every "
        "resumption of a coroutine as a call, so a coroutine's calls/req is 1 plus "
        "its resumptions). 'unprof.' columns scale profiled times by the mean of "
        "the two clients' unprofiled/profiled CPU ratios: rough, the profiler's "
        "overhead is per call."
    )
    lines += textwrap.wrap(text, WIDTH)
    lines += textwrap.wrap(
        "trio_resilience's own time (all its functions, callees excluded): "
        f"{profile['library_own_us_per_request']:.1f} µs profiled, "
        f"~{profile['library_own_us_per_request_unprofiled']:.1f} µs unprofiled.",
        WIDTH,
    )
    lines += ["", "Own time by package, resilient vs httpx:"]
    lines.append(f"  {'resilient':>9} {'httpx':>9} {'diff':>8} {'unprof.':>8}  package")
    for row in profile["by_package"]:
        lines.append(
            f"  {row['resilient_us_per_request']:>9.1f} "
            f"{row['httpx_us_per_request']:>9.1f} "
            f"{row['difference_us_per_request']:>+8.1f} "
            f"{row['difference_us_per_request_unprofiled']:>+8.1f}  {row['group']}"
        )

    def table(title: str, rows: Sequence[dict[str, Any]]) -> None:
        lines.extend(["", title])
        lines.append(
            f"  {'calls/req':>9} {'own':>7} {'cum':>8} {'unprof.':>8}  function"
        )
        for row in rows:
            lines.append(
                f"  {row['calls_per_request']:>9.2f} "
                f"{row['own_us_per_request']:>7.1f} "
                f"{row['cumulative_us_per_request']:>8.1f} "
                f"{row['own_us_per_request_unprofiled']:>8.1f}  {row['function']}"
            )

    table(
        "trio_resilience functions by own time (unprof. = own, scaled):",
        profile["top_own"],
    )
    table(
        "trio_resilience functions by cumulative time (cum includes httpx):",
        profile["top_cumulative"],
    )
    lines += ["", "Largest differences in own time, any package (resilient - httpx):"]
    lines.append(
        f"  {'resilient':>9} {'httpx':>9} {'diff':>8} {'unprof.':>8}  function"
    )
    for row in profile["top_differences"]:
        lines.append(
            f"  {row['resilient_own_us_per_request']:>9.1f} "
            f"{row['httpx_own_us_per_request']:>9.1f} "
            f"{row['difference_us_per_request']:>+8.1f} "
            f"{row['difference_us_per_request_unprofiled']:>+8.1f}  {row['function']}"
        )
    if profile["suggestions"]:
        lines.extend(["", "Suggestions (the library code was not changed):"])
        for suggestion in profile["suggestions"]:
            lines += textwrap.wrap(
                suggestion, WIDTH, initial_indent="  * ", subsequent_indent="    "
            )
    return "\n".join(lines)


# -- command line ----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Measure requests/s and p50/p99 latency of GET /msg through "
            "ResilientClient and a raw httpx.AsyncClient at concurrency 1, 10, 50."
        )
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            f"{QUICK_REPEATS} repeat of {QUICK_DURATION:g} s per client and "
            f"concurrency instead of {FULL_REPEATS} of {FULL_DURATION:g} s (a smoke "
            "test, not a measurement)"
        ),
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the results as JSON"
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="measured seconds per client and repeat (overrides --quick)",
    )
    parser.add_argument(
        "--repeats", type=int, help="repeats per concurrency (overrides --quick)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        metavar="S",
        help=(
            f"seconds of unmeasured load per fresh client (default {FULL_WARMUP:g}, "
            f"{QUICK_WARMUP:g} with --quick)"
        ),
    )
    parser.add_argument(
        "--slice",
        type=float,
        default=SLICE,
        metavar="S",
        help=(
            f"seconds of one measured slice (default {SLICE:g}); each client's "
            "--duration is cut into slices that alternate between the clients"
        ),
    )
    parser.add_argument(
        "--pool",
        choices=["keepalive", "httpx-default"],
        default="keepalive",
        help=(
            "connection pool of both clients: 100 connections all kept alive "
            "(default), or httpx's defaults (100 connections, 20 kept alive)"
        ),
    )
    parser.add_argument(
        "--profile-duration",
        type=float,
        metavar="S",
        help=(
            "seconds per client of the cProfile run made when a ratio is below "
            f"{TARGET} (default {FULL_PROFILE_DURATION:g}, {QUICK_PROFILE_DURATION:g}"
            " with --quick)"
        ),
    )
    parser.add_argument(
        "--no-profile", action="store_true", help="never profile, whatever the ratios"
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = QUICK_DURATION if args.quick else FULL_DURATION
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else FULL_REPEATS
    if args.warmup is None:
        args.warmup = QUICK_WARMUP if args.quick else FULL_WARMUP
    if args.profile_duration is None:
        args.profile_duration = (
            QUICK_PROFILE_DURATION if args.quick else FULL_PROFILE_DURATION
        )
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.slice <= 0:
        parser.error("--slice must be positive")
    if args.profile_duration <= 0:
        parser.error("--profile-duration must be positive")
    return args


def _interrupt_code(error: BaseException) -> int | None:
    """The exit code if ``error`` is (or holds) Ctrl-C or SIGTERM, else None."""
    if isinstance(error, KeyboardInterrupt):
        return 130
    if isinstance(error, SystemExit):
        return error.code if isinstance(error.code, int) else 1
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            code = _interrupt_code(inner)
            if code is not None:
                return code
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    pinning = choose_pinning()
    print(f"pinning: {pinning.description}", file=sys.stderr)
    try:
        with running_server(pinning.server) as server:
            pinning.pin_this_process()
            series, profiles = trio.run(run_all, server, args)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit, BaseExceptionGroup) as error:
        # Inside trio.run an interrupt can arrive wrapped in an exception group.
        code = _interrupt_code(error)
        if code is None:
            raise
        print("interrupted; the server was stopped", file=sys.stderr)
        return code
    results = build_results(series)
    ratios = build_ratios(series)
    by_series = {s.name: s for s in series}
    env = environment("httpx", "httpcore", "hypercorn")
    meta: dict[str, Any] = {
        "server": SERVER_DESCRIPTION,
        "pinned": pinning.pinned,
        "pinning": pinning.description,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "concurrencies": list(CONCURRENCIES),
        "pool": args.pool,
        "pool_description": pool_description(args.pool),
        "config": config_description(),
        "slice_s": args.duration / slice_count(args.duration, args.slice),
        "slices": slice_count(args.duration, args.slice),
        "order": "a b b a ... (b a a b ... in odd repeats)",
        "paired_ratios": {
            f"c{c}": [
                a.requests_per_s / b.requests_per_s
                for a, b in zip(
                    by_series[f"{RESILIENT}_c{c}"].samples,
                    by_series[f"{HTTPX}_c{c}"].samples,
                    strict=True,
                )
            ]
            for c in CONCURRENCIES
        },
        "upper_quartile_ratios": build_upper_quartile_ratios(results),
        "bistable": [r["name"] for r in results if is_bistable(r)],
        "server_exit_code": server.exit_code,
    }
    print()
    print(format_table(results, ratios, env, meta))
    for profile in profiles:
        print(format_profile(profile))
    if args.json is not None:
        document = {
            "benchmark": "client",
            **env,
            **meta,
            "results": results,
            "ratios": ratios,
            "target_client_vs_httpx": TARGET,
            "profiles": profiles,
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
