"""No-op jobs per second through JobQueue, next to a bare memory-channel worker pool.

Run::

    python benchmarks/bench_jobs.py [--quick] [--json PATH]

For 1, 4 and 16 workers, both subjects push the same number of no-op jobs through
the same kind of worker pool inside one ``trio.run`` on the real clock:

* ``job_queue``: ``JobQueue(registry, workers=W)``; every job is submitted with
  ``await queue.submit("noop")``, then the producer waits until every job has
  finished (``queue.wait(job_id)`` for any not finished yet), so the figure includes
  all the bookkeeping (ids, states, timestamps, retention, results).
* ``channel_floor``: ``W`` tasks reading a trio memory channel and calling the same
  no-op handler; the producer ``await send.send(...)``s every job and each worker
  stores the handler's result in a dict. This is the floor: the least a nursery-owned
  worker pool can cost.
* ``channel_floor_scoped``: the same, each job inside its own ``trio.CancelScope``,
  which is what makes a running job cancellable (and time-limited) on its own; the
  gap between the two floors is what that costs.

Subjects alternate within each repeat (floor, queue, queue, floor, ...), and the
median of the repeats is reported with its spread. The ratio is queue / floor (higher
is better; the issue's target is >= 0.5).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio
from _common import environment

from trio_resilience.jobs import HandlerRegistry, JobContext, JobQueue

WORKER_COUNTS = (1, 4, 16)
FULL = {"jobs": 20_000, "repeats": 5}
QUICK = {"jobs": 4_000, "repeats": 2}


async def noop(payload: dict[str, Any], ctx: object) -> None:
    return None


def make_registry() -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("noop")
    async def handler(payload: dict[str, Any], ctx: JobContext) -> None:
        return await noop(payload, ctx)

    return registry


async def run_job_queue(workers: int, jobs: int) -> float:
    """Seconds for ``jobs`` no-op jobs through a JobQueue."""
    registry = make_registry()
    async with JobQueue(
        registry, workers=workers, max_queued=jobs, max_retained=jobs
    ) as queue:
        start = time.perf_counter()
        ids = [await queue.submit("noop") for _ in range(jobs)]
        for job_id in ids:
            if not queue.get(job_id).status.finished:
                await queue.wait(job_id)
        return time.perf_counter() - start


async def run_channel_floor(workers: int, jobs: int, *, scoped: bool = False) -> float:
    """Seconds for ``jobs`` no-op jobs through a bare memory-channel worker pool;
    ``scoped`` runs each job in its own cancel scope, as cancellable jobs need."""
    results: dict[int, Any] = {}
    send, receive = trio.open_memory_channel[int](jobs)

    async def worker(channel: trio.MemoryReceiveChannel[int]) -> None:
        async with channel:
            async for n in channel:
                if scoped:
                    with trio.CancelScope():
                        results[n] = await noop({}, None)
                else:
                    results[n] = await noop({}, None)

    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        async with receive:
            for _ in range(workers):
                nursery.start_soon(worker, receive.clone())
        async with send:
            for n in range(jobs):
                await send.send(n)
    elapsed = time.perf_counter() - start
    assert len(results) == jobs
    return elapsed


async def run_scoped_floor(workers: int, jobs: int) -> float:
    return await run_channel_floor(workers, jobs, scoped=True)


Subject = Callable[[int, int], Awaitable[float]]
SUBJECTS: dict[str, Subject] = {
    "channel_floor": run_channel_floor,
    "channel_floor_scoped": run_scoped_floor,
    "job_queue": run_job_queue,
}


async def measure(jobs: int, repeats: int) -> dict[tuple[str, int], list[float]]:
    """jobs/s samples per (subject, workers)."""
    samples: dict[tuple[str, int], list[float]] = {}
    for workers in WORKER_COUNTS:
        for subject in SUBJECTS.values():  # warm-up
            await subject(workers, max(100, jobs // 10))
        for repeat in range(repeats):
            order = list(SUBJECTS.items())
            if repeat % 2:
                order.reverse()
            for name, subject in order:
                gc.collect()
                seconds = await subject(workers, jobs)
                samples.setdefault((name, workers), []).append(jobs / seconds)
    return samples


def report(
    samples: dict[tuple[str, int], list[float]], jobs: int, repeats: int
) -> dict[str, Any]:
    results: list[dict[str, Any]] = []
    ratios: dict[str, float] = {}
    for workers in WORKER_COUNTS:
        medians = {}
        for name in SUBJECTS:
            values = samples[(name, workers)]
            medians[name] = statistics.median(values)
            results.append(
                {
                    "name": f"{name}_w{workers}",
                    "unit": "jobs/s",
                    "median": medians[name],
                    "min": min(values),
                    "max": max(values),
                    "repeats": repeats,
                    "jobs": jobs,
                    "workers": workers,
                }
            )
        ratios[f"jobs_vs_channel_floor_w{workers}"] = (
            medians["job_queue"] / medians["channel_floor"]
        )
        ratios[f"jobs_vs_scoped_floor_w{workers}"] = (
            medians["job_queue"] / medians["channel_floor_scoped"]
        )
    ratios["jobs_vs_channel_floor"] = min(
        value for name, value in ratios.items() if "channel_floor" in name
    )
    return {
        "benchmark": "jobs",
        **environment(),
        "results": results,
        "ratios": ratios,
        "target_jobs_vs_channel_floor": 0.5,
    }


def format_table(document: dict[str, Any]) -> str:
    first = document["results"][0]
    lines = [
        f"trio_resilience job queue: Python {document['python']}, trio "
        f"{document['trio']}, {document['cpu_count']} CPUs, {first['repeats']} repeats"
        f" x {first['jobs']:,} no-op jobs (median, min-max of repeats)",
        "",
        f"{'subject':<22} {'median':>10} {'min':>10} {'max':>10}",
        f"{'':<22} {'jobs/s':>10} {'jobs/s':>10} {'jobs/s':>10}",
    ]
    for r in document["results"]:
        figures = f"{r['median']:>10,.0f} {r['min']:>10,.0f} {r['max']:>10,.0f}"
        lines.append(f"{r['name']:<22} {figures}")
    lines.append("")
    for name, value in document["ratios"].items():
        lines.append(f"{name:<30} = {value:.3f}")
    lines.append(
        "(jobs_vs_channel_floor is the worst of the three; the target is >= 0.5)"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, smaller runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write JSON here")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    samples = trio.run(measure, size["jobs"], size["repeats"])
    document = report(samples, size["jobs"], size["repeats"])
    print(format_table(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
