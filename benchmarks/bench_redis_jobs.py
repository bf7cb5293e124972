"""No-op jobs per second through RedisJobQueue, next to streaQ on Trio, same Redis.

Run::

    python benchmarks/bench_redis_jobs.py [--quick] [--json PATH]

On a ``redis-server`` of its own (free port, temporary directory, no persistence),
in one ``trio.run``, rounds alternate (ours, streaQ, streaQ, ours, ...), FLUSHDB
before each. A round opens the subject with 16 job slots, starts the clock,
enqueues N no-op jobs one at a time from 16 tasks (ours has no batch submit, so
streaQ's ``enqueue_many`` is not used), and polls (5 ms) until all N finished:
ours until ``statistics()`` has none pending or running and N retained; streaQ
(``run_async()`` in a nursery, a no-op task that checks it runs under Trio) until
``queue_size()`` is 0 (an entry leaves the stream in the transaction storing its
result) and the worker counted N completed. Also per round: the process's CPU
time, and from the server's ``INFO`` (reset when the clock starts) Redis commands
per job by name (including those run by Lua) and its socket read/write events.
The ratio is ours / streaQ, medians of the rounds (target >= 1.0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import sniffio
import trio
from _common import BenchmarkError, environment, redis_cli, redis_server
from streaq import Worker

from trio_resilience.jobs import HandlerRegistry, JobContext, RedisJobQueue
from trio_resilience.redis import open_redis

FULL = {"jobs": 5_000, "rounds": 3}
QUICK = {"jobs": 1_000, "rounds": 3}
SLOTS = 16
"""Concurrent job slots (workers) of each subject, and concurrent enqueuers."""
POLL = 0.005
EVENTS = ("total_reads_processed", "total_writes_processed")
"""The server's socket read and write events (INFO stats)."""


def server_counts(port: int) -> dict[str, int]:
    """Commands by name, and read/write events, since the last CONFIG RESETSTAT."""
    counts: dict[str, int] = {}
    for line in redis_cli(port, "INFO", "stats", "commandstats").splitlines():
        name, _, value = line.strip().removeprefix("cmdstat_").partition(":")
        if name in EVENTS or value.startswith("calls="):
            counts[name] = int(value.removeprefix("calls=").split(",")[0])
    counts.pop("config|resetstat", None)
    return counts


async def enqueue_all(enqueue: Callable[[], Awaitable[Any]], jobs: int) -> None:
    """``jobs`` enqueues, one at a time from each of `SLOTS` concurrent tasks."""
    left = [jobs]

    async def producer() -> None:
        while left[0] > 0:
            left[0] -= 1
            await enqueue()

    async with trio.open_nursery() as nursery:
        for _ in range(SLOTS):
            nursery.start_soon(producer)


def start_clock(port: int) -> tuple[float, float]:
    """Resets the server's counts: `stop_clock` reads them."""
    redis_cli(port, "CONFIG", "RESETSTAT")
    return time.perf_counter(), time.process_time()


def stop_clock(port: int, jobs: int, started: tuple[float, float]) -> dict[str, Any]:
    wall, cpu = time.perf_counter() - started[0], time.process_time() - started[1]
    counts = sorted(server_counts(port).items())
    per_job = {name: count / jobs for name, count in counts}
    return {"jobs_per_s": jobs / wall, "cpu_s": cpu, "per_job": per_job}


async def run_ours(port: int, jobs: int) -> dict[str, Any]:
    registry = HandlerRegistry()

    @registry.handler("noop")
    async def noop(payload: dict[str, Any], ctx: JobContext) -> None:
        return None

    url = f"redis://127.0.0.1:{port}/0"
    bound = jobs + 10
    async with (
        open_redis(url) as redis,
        RedisJobQueue(
            redis, registry, workers=SLOTS, max_queued=bound, max_retained=bound
        ) as queue,
    ):
        started = start_clock(port)
        await enqueue_all(lambda: queue.submit("noop", {}), jobs)
        while True:
            stats = await queue.statistics()
            if stats.pending == stats.running == 0 and stats.retained == jobs:
                break
            await trio.sleep(POLL)
        return stop_clock(port, jobs, started)


async def run_streaq(port: int, jobs: int) -> dict[str, Any]:
    worker = Worker(
        redis_url=f"redis://127.0.0.1:{port}/0",
        anyio_backend="trio",
        concurrency=SLOTS,
        handle_signals=False,
    )
    backends: set[str] = set()

    @worker.task(silent=True)
    async def noop() -> None:
        backends.add(sniffio.current_async_library())
        if asyncio._get_running_loop() is not None:
            backends.add("an asyncio loop")

    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run_async)
        started = start_clock(port)
        await enqueue_all(noop.enqueue, jobs)
        while True:
            if not await worker.queue_size() and worker.counters["completed"] >= jobs:
                break
            await trio.sleep(POLL)
        sample = stop_clock(port, jobs, started)
        nursery.cancel_scope.cancel()
    if backends != {"trio"} or worker.counters["completed"] != jobs:
        raise BenchmarkError(f"streaQ ran on {backends}: {dict(worker.counters)}")
    return sample


SUBJECTS = {"redis_job_queue": run_ours, "streaq": run_streaq}


async def measure(port: int, jobs: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in SUBJECTS}
    for run in SUBJECTS.values():  # warm-up
        redis_cli(port, "FLUSHDB")
        await run(port, max(100, jobs // 10))
    for index in range(rounds):
        order = list(SUBJECTS.items())
        for name, run in order if index % 2 == 0 else reversed(order):
            redis_cli(port, "FLUSHDB")
            samples[name].append(await run(port, jobs))
    return samples


def report(samples: dict[str, list[dict[str, Any]]], jobs: int) -> dict[str, Any]:
    results = []
    for name in SUBJECTS:
        ordered = sorted(samples[name], key=lambda s: s["jobs_per_s"])
        rates = [s["jobs_per_s"] for s in ordered]
        cpu = statistics.median(s["cpu_s"] for s in ordered)
        results.append(
            {
                "name": name,
                "unit": "jobs/s",
                "median": statistics.median(rates),
                "min": rates[0],
                "max": rates[-1],
                "repeats": len(rates),
                "jobs": jobs,
                "workers": SLOTS,
                "cpu_ms_per_job": cpu / jobs * 1e3,
                "redis_per_job": ordered[len(rates) // 2]["per_job"],
            }
        )
    ratio = results[0]["median"] / results[1]["median"]
    return {
        "benchmark": "redis_jobs",
        **environment("streaq", "coredis"),
        "results": results,
        "ratios": {"redis_jobs_vs_streaq": ratio},
        "target_redis_jobs_vs_streaq": 1.0,
    }


def format_table(document: dict[str, Any]) -> str:
    first = document["results"][0]
    lines = [
        f"Redis job queues on Trio: Python {document['python']}, trio "
        f"{document['trio']}, streaq {document['streaq']}, Redis "
        f"{document['redis_server']}, {document['cpu_count']} CPUs, "
        f"{first['repeats']} rounds x {first['jobs']:,} no-op jobs, {SLOTS} slots",
        "",
        f"{'jobs/s':<16} {'median':>9} {'min':>9} {'max':>9} {'CPU ms/job':>11}",
    ]
    for r in document["results"]:
        figures = f"{r['median']:>9,.0f} {r['min']:>9,.0f} {r['max']:>9,.0f}"
        lines.append(f"{r['name']:<16} {figures} {r['cpu_ms_per_job']:>11.2f}")
    lines += ["", "Redis per job (median round; commands run by Lua included):"]
    for r in document["results"]:
        counts = ", ".join(f"{k} {v:.2f}" for k, v in r["redis_per_job"].items())
        lines.append(f"  {r['name']}: {counts}")
    ratio = document["ratios"]["redis_jobs_vs_streaq"]
    lines += ["", f"redis_jobs_vs_streaq = {ratio:.3f} (target >= 1.0)"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs per round")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write JSON here")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        print("bench_redis_jobs: redis-server is not installed: skipped, no figures")
        return 0
    with tempfile.TemporaryDirectory() as tmp, redis_server(Path(tmp)) as redis:
        port = redis.port
        samples = trio.run(measure, port, size["jobs"], size["rounds"])
        info = redis_cli(port, "INFO", "server")
    document = report(samples, size["jobs"])
    document["redis_server"] = info.split("redis_version:")[1].split()[0]
    print(format_table(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
