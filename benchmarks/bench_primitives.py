"""Per-operation cost of the trio_resilience primitives, in µs and in checkpoints.

Run::

    python benchmarks/bench_primitives.py [--quick] [--json PATH]

Everything runs inside one ``trio.run`` on the real clock (no ``MockClock``), in a
single task, so no primitive ever has to wait: each figure is the uncontended,
happy-path overhead. Every subject gets one warm-up loop, then ``repeats`` timed loops
of ``iterations`` operations each, measured with `time.perf_counter`. Subjects are
interleaved round-robin (one loop of each per round, in a rotating order) so that
machine drift affects all of them alike.

Nothing is subtracted. Each subject's median is reported next to the median of a bare
``await trio.lowlevel.checkpoint()`` (the reference: a primitive costing "2.0
checkpoints" is twice as expensive as one trip through the trio scheduler), and the
`SemaphoreRateLimiter` is also compared with the raw `trio.CapacityLimiter` it wraps.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from _common import environment

from trio_resilience import (
    CircuitBreaker,
    CircuitState,
    PerKeyRateLimiter,
    SemaphoreRateLimiter,
    TokenBucketRateLimiter,
    retry,
)

BASELINE = "checkpoint"
CAPACITY_LIMITER = "capacity_limiter_acquire_release"
SEMAPHORE = "semaphore_acquire_release"

FULL_ITERATIONS = 50_000
FULL_REPEATS = 7
QUICK_ITERATIONS = 5_000
QUICK_REPEATS = 3

Loop = Callable[[int], Awaitable[None]]
"""Runs the measured operation ``n`` times."""


@dataclass
class Subject:
    name: str
    description: str
    loop: Loop
    body_checkpoints: int = 0
    """Checkpoints the guarded body itself performs (part of the measured cost)."""
    samples: list[float] = field(default_factory=list)  # µs per operation

    @property
    def median(self) -> float:
        return statistics.median(self.samples)


# -- the subjects ------------------------------------------------------------------
#
# Every loop has the same shape (``for _ in range(n): <operation>``) and binds
# trio.lowlevel.checkpoint to a local, so the loop overhead is identical for all of
# them and is part of the baseline too.


def make_subjects(
    per_key: PerKeyRateLimiter[str, SemaphoreRateLimiter],
) -> tuple[list[Subject], Callable[[], None]]:
    """The subjects, and a check that each took the path it is meant to measure."""
    checkpoint = trio.lowlevel.checkpoint

    async def bare_checkpoint(n: int) -> None:
        for _ in range(n):
            await checkpoint()

    breaker = CircuitBreaker()

    async def breaker_async_with(n: int) -> None:
        for _ in range(n):
            async with breaker:
                await checkpoint()

    decorating_breaker = CircuitBreaker()

    @decorating_breaker
    async def guarded() -> None:
        await checkpoint()

    async def breaker_decorator(n: int) -> None:
        for _ in range(n):
            await guarded()

    bucket = TokenBucketRateLimiter(rate=1e12, capacity=1e12)

    async def token_bucket_acquire(n: int) -> None:
        for _ in range(n):
            await bucket.acquire()

    semaphore = SemaphoreRateLimiter(10)

    async def semaphore_acquire_release(n: int) -> None:
        for _ in range(n):
            await semaphore.acquire()
            await semaphore.release()

    capacity_limiter = trio.CapacityLimiter(10)

    async def capacity_limiter_acquire_release(n: int) -> None:
        for _ in range(n):
            await capacity_limiter.acquire()
            capacity_limiter.release()

    async def per_key_limit(n: int) -> None:
        for _ in range(n):
            async with per_key.limit("k"):
                pass

    @retry(on=ValueError)
    async def retried() -> None:
        await checkpoint()

    async def retry_decorator(n: int) -> None:
        for _ in range(n):
            await retried()

    def check() -> None:
        for b in (breaker, decorating_breaker):
            stats = b.statistics()
            assert stats.state is CircuitState.CLOSED, stats
            assert stats.total_failures == stats.total_rejections == 0, stats
        assert bucket.statistics().waiting == 0, bucket
        assert semaphore.statistics().in_use == 0, semaphore
        assert capacity_limiter.borrowed_tokens == 0, capacity_limiter
        assert len(per_key) == 1, per_key

    subjects = [
        Subject(BASELINE, "await trio.lowlevel.checkpoint()", bare_checkpoint),
        Subject(
            "breaker_async_with",
            "async with CircuitBreaker(): checkpoint  [CLOSED]",
            breaker_async_with,
            body_checkpoints=1,
        ),
        Subject(
            "breaker_decorator",
            "@CircuitBreaker() fn: checkpoint  [CLOSED]",
            breaker_decorator,
            body_checkpoints=1,
        ),
        Subject(
            "token_bucket_acquire",
            "TokenBucketRateLimiter(1e12, 1e12).acquire()",
            token_bucket_acquire,
        ),
        Subject(
            SEMAPHORE,
            "SemaphoreRateLimiter(10) acquire + release",
            semaphore_acquire_release,
        ),
        Subject(
            CAPACITY_LIMITER,
            "trio.CapacityLimiter(10) acquire + release",
            capacity_limiter_acquire_release,
        ),
        Subject(
            "per_key_limit",
            'async with PerKeyRateLimiter(Semaphore(10)).limit("k")',
            per_key_limit,
        ),
        Subject(
            "retry_decorator",
            "@retry(on=ValueError) fn: checkpoint  [success]",
            retry_decorator,
            body_checkpoints=1,
        ),
    ]
    return subjects, check


# -- running ---------------------------------------------------------------------


async def time_loop(subject: Subject, iterations: int) -> float:
    """One timed loop; returns µs per operation."""
    gc.collect()
    start = time.perf_counter()
    await subject.loop(iterations)
    elapsed = time.perf_counter() - start
    return elapsed / iterations * 1e6


async def run_benchmarks(iterations: int, repeats: int) -> list[Subject]:
    async with PerKeyRateLimiter[str, SemaphoreRateLimiter](
        lambda: SemaphoreRateLimiter(10)
    ) as per_key:
        subjects, check = make_subjects(per_key)
        warmup = max(1, iterations // 5)
        for subject in subjects:
            await time_loop(subject, warmup)
        for round_no in range(repeats):
            # Round-robin, starting one subject later each round, so no subject is
            # always the one that runs first (right after the previous round's last).
            shift = round_no % len(subjects)
            for subject in subjects[shift:] + subjects[:shift]:
                subject.samples.append(await time_loop(subject, iterations))
        check()
    return subjects


# -- reporting -------------------------------------------------------------------


def build_results(
    subjects: Sequence[Subject], iterations: int, repeats: int
) -> list[dict[str, Any]]:
    by_name = {s.name: s for s in subjects}
    base = by_name[BASELINE].median
    capacity = by_name[CAPACITY_LIMITER].median
    results: list[dict[str, Any]] = []
    for s in subjects:
        result: dict[str, Any] = {
            "name": s.name,
            "description": s.description,
            "unit": "us/op",
            "median": s.median,
            "min": min(s.samples),
            "max": max(s.samples),
            "repeats": repeats,
            "iterations": iterations,
            "baseline": BASELINE,
            "ratio_to_baseline": s.median / base,
            "body_checkpoints": s.body_checkpoints,
        }
        if s.name == SEMAPHORE:
            result["ratio_to_capacity_limiter"] = s.median / capacity
        results.append(result)
    return results


def format_table(results: Sequence[dict[str, Any]], env: dict[str, Any]) -> str:
    first = results[0]
    lines = [
        f"trio_resilience primitives: Python {env['python']}, trio {env['trio']}, "
        f"{env['cpu_count']} CPUs, {first['repeats']} repeats x "
        f"{first['iterations']:,} iterations (median, min-max of repeats)",
        "",
    ]
    header = (
        f"{'benchmark':<34} {'median':>8} {'min':>8} {'max':>8} "
        f"{'spread':>7} {'x ckpt':>7}  note"
    )
    lines += [header, f"{'':<34} {'us/op':>8} {'us/op':>8} {'us/op':>8}", ""]
    for r in results:
        spread = (r["max"] - r["min"]) / r["median"] * 100
        notes = []
        if r["name"] == BASELINE:
            notes.append("reference")
        elif r["name"] == CAPACITY_LIMITER:
            notes.append("second reference")
        if "ratio_to_capacity_limiter" in r:
            notes.append(f"{r['ratio_to_capacity_limiter']:.2f}x raw CapacityLimiter")
        if r["body_checkpoints"]:
            notes.append(f"incl. {r['body_checkpoints']} checkpoint in the body")
        line = (
            f"{r['name']:<34} {r['median']:>8.3f} {r['min']:>8.3f} {r['max']:>8.3f} "
            f"{spread:>6.1f}% {r['ratio_to_baseline']:>6.2f}x  {'; '.join(notes)}"
        )
        lines.append(line.rstrip())
    lines += ["", "What each line measures:"]
    lines += [f"  {r['name']:<34} {r['description']}" for r in results]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Measure the per-operation cost of the trio_resilience primitives "
            "against a bare trio checkpoint."
        )
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=(
            f"{QUICK_REPEATS} repeats of {QUICK_ITERATIONS:,} iterations instead of "
            f"{FULL_REPEATS} of {FULL_ITERATIONS:,} (a smoke test, not a measurement)"
        ),
    )
    parser.add_argument(
        "--json", type=Path, metavar="PATH", help="also write the results as JSON"
    )
    parser.add_argument(
        "--iterations", type=int, help="operations per timed loop (overrides --quick)"
    )
    parser.add_argument(
        "--repeats", type=int, help="timed loops per subject (overrides --quick)"
    )
    args = parser.parse_args(argv)
    if args.iterations is None:
        args.iterations = QUICK_ITERATIONS if args.quick else FULL_ITERATIONS
    if args.repeats is None:
        args.repeats = QUICK_REPEATS if args.quick else FULL_REPEATS
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    iterations: int = args.iterations
    repeats: int = args.repeats
    subjects = trio.run(run_benchmarks, iterations, repeats)
    results = build_results(subjects, iterations, repeats)
    env = environment()
    print(format_table(results, env))
    if args.json is not None:
        document = {"benchmark": "primitives", **env, "results": results}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
