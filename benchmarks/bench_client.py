"""Calls/s and client CPU per call: ResilientClient, raw httpx and aiohttp (issue 13).

    python benchmarks/bench_client.py [--quick] [--json PATH]

Against the raw ASGI app of ``_baselines.py`` on uvicorn, on a CPU of its own, at
concurrency 1, 10, 50: ``resilient`` (ResilientClient, its default transport),
``resilient_metrics`` (the same with a ``ClientMetrics`` attached: what the
metrics cost), ``resilient_fallback`` (on ``transport="httpx"``: what the pool buys)
and ``httpx`` (raw ``httpx.AsyncClient``, the baseline) on Trio, ``aiohttp``
(informative) on asyncio. Each slice is its own ``trio.run``/``asyncio.run`` (a
fresh client, N workers, a warm-up, a counted window); slices alternate a b c c b a ...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import functools
import gc
import importlib.util
import json
import math
import os
import signal
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import trio
from _common import (
    HOST,
    PATH,
    UVICORN_HTTP,
    BenchmarkError,
    Clocks,
    ServerProcess,
    check_message,
    environment,
    exit_on_sigterm,
    find_two_cpus,
    interleaved,
    median_or_none,
    percent,
    uvicorn_server,
)

from trio_resilience import BulkheadConfig, ClientConfig, LoggingConfig, ResilientClient
from trio_resilience.metrics import ClientMetrics

CONCURRENCIES = (1, 10, 50)
SLICE = 0.5  # target seconds of one measured window
STAGGER = 0.05  # workers start spread over this: 50 first requests at once can
# tip httpcore's pool into a slow state
STOP_GRACE = 10.0  # seconds a slice may overrun its warm-up and window
USER_AGENT = "trio-resilience"  # ResilientClient's default, sent by every subject


@dataclasses.dataclass(frozen=True)
class Plan:
    duration: float  # measured seconds per subject, concurrency and repeat
    repeats: int
    warmup: float  # uncounted seconds at the start of every slice

    @property
    def slices(self) -> int:
        return max(1, round(self.duration / SLICE))


FULL = Plan(duration=5.0, repeats=3, warmup=0.15)
QUICK = Plan(duration=1.5, repeats=1, warmup=0.15)

# -- counting --------------------------------------------------------------------

Get = Callable[[], Awaitable[tuple[int, bytes]]]  # one GET /msg: status, body
Sleep = Callable[[float], Awaitable[None]]


@dataclasses.dataclass
class Tally:
    """Calls completed (200) inside measured windows, and those windows' clocks
    (``server_cpu``: NaN if unknown)."""

    calls: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    server_cpu: float = 0.0
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    measuring: bool = False
    stopping: bool = False
    first: tuple[int, bytes] = (0, b"(none)")


async def worker(get: Get, tally: Tally, sleep: Sleep, delay: float) -> None:
    await sleep(delay)
    while not tally.stopping:
        try:
            status, body = await get()
        except Exception as error:  # counted and reported, never hidden
            if tally.measuring:
                tally.errors[type(error).__name__] += 1
            await sleep(0.01)
            continue
        if tally.first[0] == 0:
            tally.first = (status, body)
        if not tally.measuring:
            continue
        if status == 200:
            tally.calls += 1
        else:
            tally.errors[f"HTTP {status}"] += 1


# -- the subjects ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_resilient(
    base_url: str, metrics: bool = False, **extra: Any
) -> AsyncIterator[Get]:
    bulkhead = BulkheadConfig(max_concurrency=100, acquisition_timeout=30.0)
    logging = LoggingConfig(level="DEBUG")
    config = ClientConfig(
        base_url=base_url, bulkhead=bulkhead, logging=logging, **extra
    )
    attached = ClientMetrics() if metrics else None
    async with ResilientClient(config, metrics=attached) as client:
        yield httpx_get(client)


@contextlib.asynccontextmanager
async def open_httpx(base_url: str) -> AsyncIterator[Get]:
    timeout = httpx.Timeout(connect=5, read=30, write=30, pool=10)
    headers = {"User-Agent": USER_AGENT}
    async with httpx.AsyncClient(
        base_url=base_url, timeout=timeout, headers=headers
    ) as client:
        yield httpx_get(client)


def httpx_get(client: ResilientClient | httpx.AsyncClient) -> Get:
    async def get() -> tuple[int, bytes]:
        response = await client.get(PATH)
        return response.status_code, response.content

    return get


@contextlib.asynccontextmanager
async def open_aiohttp(base_url: str) -> AsyncIterator[Get]:
    import aiohttp  # optional (the bench extra), like uvicorn: see main

    connector = aiohttp.TCPConnector(limit=100)
    headers = {"User-Agent": USER_AGENT}
    async with aiohttp.ClientSession(
        base_url, connector=connector, headers=headers
    ) as session:

        async def get() -> tuple[int, bytes]:
            async with session.get(PATH) as response:
                return response.status, await response.read()

        yield get


@dataclasses.dataclass(frozen=True)
class Subject:
    name: str
    description: str
    opener: Callable[[str], contextlib.AbstractAsyncContextManager[Get]]
    on_trio: bool = True  # else on asyncio


def subjects() -> list[Subject]:
    forced = functools.partial(open_resilient, transport="httpx")
    metered = functools.partial(open_resilient, metrics=True)
    return [
        Subject("resilient", "ResilientClient, its default transport", open_resilient),
        Subject("resilient_metrics", "resilient, with ClientMetrics()", metered),
        Subject("resilient_fallback", 'ResilientClient, transport="httpx"', forced),
        Subject("httpx", "raw httpx.AsyncClient (the baseline)", open_httpx),
        Subject("aiohttp", "aiohttp.ClientSession, on asyncio", open_aiohttp, False),
    ]


CONFIG = (
    "resilient: bulkhead 100 slots (acquisition 30 s), logging at DEBUG, the rest "
    "default (ClientConfig.limits too), no metrics (resilient_metrics: a fresh "
    "ClientMetrics() per slice); httpx: timeouts 5/30/30/10 s, default "
    "limits; aiohttp: limit=100; all send User-Agent trio-resilience"
)


@dataclasses.dataclass(frozen=True)
class Job:  # one slice: a fresh client, its workers, warm-up, counted window
    base_url: str
    concurrency: int
    warmup: float
    window: float
    server_pid: int


async def one_slice(subject: Subject, job: Job, tally: Tally) -> None:
    """Counted in ``tally``; inside ``trio.run`` or ``asyncio.run`` (``on_trio``)."""
    sleep, tally.stopping = trio.sleep if subject.on_trio else asyncio.sleep, False
    limit = job.warmup + job.window + STOP_GRACE
    async with contextlib.AsyncExitStack() as stack:
        if subject.on_trio:
            stack.enter_context(trio.fail_after(limit))
        else:
            await stack.enter_async_context(asyncio.timeout(limit))
        get = await stack.enter_async_context(subject.opener(job.base_url))
        # Exited first: the workers finish their last call, then the client closes.
        tasks = trio.open_nursery() if subject.on_trio else asyncio.TaskGroup()
        group: trio.Nursery | asyncio.TaskGroup = await stack.enter_async_context(tasks)
        for i in range(job.concurrency):
            delay = i * STAGGER / job.concurrency
            if isinstance(group, asyncio.TaskGroup):
                group.create_task(worker(get, tally, sleep, delay))
            else:
                group.start_soon(worker, get, tally, sleep, delay)
        await sleep(job.warmup)
        before = Clocks.read(job.server_pid)
        tally.measuring = True
        await sleep(job.window)
        tally.measuring, tally.stopping = False, True
        spent = Clocks.read(job.server_pid) - before
        tally.wall, tally.cpu = tally.wall + spent.wall, tally.cpu + spent.cpu
        tally.server_cpu += math.nan if spent.other_cpu is None else spent.other_cpu


def run_slice(subject: Subject, job: Job, tally: Tally) -> None:
    gc.collect()
    if subject.on_trio:
        trio.run(one_slice, subject, job, tally)
    else:
        asyncio.run(one_slice(subject, job, tally))


# -- the run ---------------------------------------------------------------------


def run_all(
    chosen: Sequence[Subject], server: ServerProcess, plan: Plan
) -> dict[tuple[str, int], list[Tally]]:
    """Per subject and concurrency, one `Tally` per repeat."""
    base_url, pid = f"http://{HOST}:{server.port}", server.process.pid
    tallies: dict[tuple[str, int], list[Tally]] = defaultdict(list)
    for repeat in range(plan.repeats):
        for c in CONCURRENCIES:
            print(f"repeat {repeat + 1}/{plan.repeats}, c={c}", file=sys.stderr)
            job = Job(base_url, c, plan.warmup, plan.duration / plan.slices, pid)
            for s in chosen:
                tallies[s.name, c].append(Tally())
            for subject in interleaved(chosen, plan.slices, repeat % 2 == 1):
                run_slice(subject, job, total := tallies[subject.name, c][-1])
                check_message(*total.first, f"{subject.name}: first answer: ")
    return tallies


def build_results(
    chosen: Sequence[Subject], tallies: dict[tuple[str, int], list[Tally]]
) -> list[dict[str, Any]]:
    results = []
    for c in CONCURRENCIES:
        for s in chosen:
            repeats = tallies[s.name, c]
            rates = [t.calls / t.wall for t in repeats]
            cpu_us = [t.cpu / max(t.calls, 1) * 1e6 for t in repeats]
            errors = sum((t.errors for t in repeats), Counter[str]())
            server = [t.server_cpu / t.wall for t in repeats if t.server_cpu >= 0]
            results.append(
                {
                    "name": f"{s.name}_c{c}",
                    "subject": s.name,
                    "description": s.description,
                    "unit": "calls/s",
                    "median": statistics.median(rates),
                    "min": min(rates),
                    "max": max(rates),
                    "samples": rates,
                    "repeats": len(repeats),
                    "concurrency": c,
                    "calls": sum(t.calls for t in repeats),
                    "cpu_us_per_call": statistics.median(cpu_us),
                    "client_cpu": statistics.median(t.cpu / t.wall for t in repeats),
                    "server_cpu": median_or_none(server),
                    "errors": dict(errors),
                }
            )
    return results


RATIOS = {
    "client_vs_httpx": ("resilient", "httpx"),
    "client_fallback_vs_httpx": ("resilient_fallback", "httpx"),
    "client_vs_aiohttp": ("resilient", "aiohttp"),
    "client_metrics_on_vs_off": ("resilient_metrics", "resilient"),
}


def build_ratios(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    by_name = {r["name"]: r["median"] for r in results}
    return {
        f"{ratio}_c{c}": by_name[f"{ours}_c{c}"] / by_name[f"{theirs}_c{c}"]
        for ratio, (ours, theirs) in RATIOS.items()
        for c in CONCURRENCIES
        if f"{ours}_c{c}" in by_name
    }


def format_report(results: Sequence[dict[str, Any]], meta: dict[str, Any]) -> str:
    by_name = {r["name"]: r for r in results}
    lines = [
        f"server: {meta['server']}",
        f"pinning: {meta['pinning']}",
        f"{meta['repeats']} repeat(s) x {meta['slices']} slices ="
        f" {meta['duration']:g} s per subject and concurrency, {meta['warmup']:g} s"
        " warm-up per slice",
        "",
        f"{'subject':<18} {'c':>3} {'calls/s':>9} {'min':>8} {'max':>8}"
        f" {'CPU-µs/call':>12} {'cli CPU':>8} {'srv CPU':>8} {'vs httpx':>9}",
    ]
    for r in results:
        httpx_rate = by_name[f"httpx_c{r['concurrency']}"]["median"]
        lines.append(
            f"{r['subject']:<18} {r['concurrency']:>3} {r['median']:>9,.0f}"
            f" {r['min']:>8,.0f} {r['max']:>8,.0f} {r['cpu_us_per_call']:>12,.0f}"
            f" {percent(r['client_cpu']):>8} {percent(r['server_cpu']):>8}"
            f" {r['median'] / httpx_rate:>9.3f}"
        )
    lines.append("")
    for c in CONCURRENCIES:
        ours, theirs = by_name[f"resilient_c{c}"], by_name[f"aiohttp_c{c}"]
        extra = ours["cpu_us_per_call"] - theirs["cpu_us_per_call"]
        lines.append(
            f"c={c:<3} ResilientClient at {ours['median'] / theirs['median']:.2f}x"
            f" aiohttp's calls/s ({theirs['median'] / ours['median']:.2f}x slower),"
            f" {extra:+,.0f} CPU-µs/call"
        )
    for c in CONCURRENCIES:
        on, off = by_name[f"resilient_metrics_c{c}"], by_name[f"resilient_c{c}"]
        extra = on["cpu_us_per_call"] - off["cpu_us_per_call"]
        ratio = on["median"] / off["median"]
        lines.append(
            f"c={c:<3} with ClientMetrics / without = {ratio:.3f} calls/s,"
            f" {extra:+,.0f} CPU-µs/call"
        )
    problems = [
        f"  {r['name']}: " + ", ".join(f"{k} x{v}" for k, v in r["errors"].items())
        for r in results
        if r["errors"]
    ]
    if meta["server_exit_code"] not in (0, -signal.SIGTERM, None):
        problems.append(f"  uvicorn exit code on SIGTERM: {meta['server_exit_code']}")
    lines += ["", "PROBLEMS:", *problems] if problems else ["", "Errors: none."]
    lines.append(
        "\ncalls/s: 200s completed in the windows / their length, median (min, max)"
        "\nover repeats; CPU-µs/call: this process's CPU time in them / calls;"
        "\ncli/srv CPU: share of a CPU used by this process / by uvicorn in them."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repeat of 1.5 s")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write JSON")
    args = parser.parse_args(argv)
    missing = [m for m in ("aiohttp", "uvicorn") if not importlib.util.find_spec(m)]
    if missing:
        print(f"bench_client: {' and '.join(missing)} not installed: skipped")
        return 0
    plan = QUICK if args.quick else FULL
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    cpus = find_two_cpus()
    if isinstance(cpus, str):
        pin, pinning = [], cpus
    else:
        pin = cpus.taskset_argv(cpus.server_cpu)
        pinning = f"uvicorn on CPU {cpus.server_cpu}, clients on CPU {cpus.other_cpu}"
    chosen = subjects()
    try:
        with uvicorn_server("benchmarks._baselines:raw_asgi_app", pin) as server:
            if not isinstance(cpus, str):
                os.sched_setaffinity(0, {cpus.other_cpu})
            tallies = run_all(chosen, server, plan)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; uvicorn was stopped", file=sys.stderr)
        return 130
    results = build_results(chosen, tallies)
    ratios = build_ratios(results)
    meta: dict[str, Any] = {
        "server": f"raw_asgi_app (benchmarks/_baselines.py) on uvicorn, one process, "
        f"--http {UVICORN_HTTP}",
        "http_implementation": UVICORN_HTTP,
        "pinned": not isinstance(cpus, str),
        "pinning": pinning,
        **dataclasses.asdict(plan),
        "slices": plan.slices,
        "config": CONFIG,
        "order": "a b c c b a ... (c b a a b c ... in odd repeats)",
        "server_exit_code": server.exit_code,
    }
    print()
    print(format_report(results, meta))
    if args.json is not None:
        env = environment("httpx", "httpcore", "aiohttp", "uvicorn", "httptools")
        document = {"benchmark": "client", **env, **meta, "results": results}
        document["ratios"] = ratios
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
