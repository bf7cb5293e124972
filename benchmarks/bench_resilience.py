"""What issue 14's client features cost and buy, each against the client without it.

Run::

    python benchmarks/bench_resilience.py [--quick] [--json PATH]

1. Per-call cost of the retry budget and of the breaker's rate mode: ResilientClient
   on ``httpx.MockTransport`` (an in-memory 200, so only the client is measured),
   calls back to back in one ``trio.run``, for four configurations interleaved in
   rounds (a b c d d c b a ...): ``plain`` (budget off, streak breaker: the client
   before issue 14), ``budget`` (the default budget), ``window`` (a count window of
   100), ``both``. Reported: µs per call (median of the rounds) and each over plain.
2. Hedging and tail latency: the test server in this process, a seeded fault rule
   holding 5% of ``GET /headers`` for 200 ms; the same sequence of calls without
   hedging and with ``HedgingConfig(delay=0.02)``; p50, p95 and p99 latency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import trio
from _common import environment, interleaved, percentile_ms

from trio_resilience import (
    BulkheadConfig,
    CircuitBreakerConfig,
    ClientConfig,
    HedgingConfig,
    ResilientClient,
    RetryConfig,
    SlidingWindow,
)
from trio_resilience.server import ServerSettings
from trio_resilience.testing import FaultClient, serve_in_background

FULL = {"calls": 4000, "rounds": 6, "tail_calls": 600}
QUICK = {"calls": 1000, "rounds": 2, "tail_calls": 200}
SLOW_SHARE, SLOW_MS, HEDGE_DELAY = 0.05, 200, 0.02

CONFIGS = {
    "plain": ClientConfig(retry=RetryConfig(budget_ratio=None)),
    "budget": ClientConfig(),
    "window": ClientConfig(
        retry=RetryConfig(budget_ratio=None),
        circuit_breaker=CircuitBreakerConfig(window=SlidingWindow()),
    ),
    "both": ClientConfig(circuit_breaker=CircuitBreakerConfig(window=SlidingWindow())),
}


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


async def per_call_us(config: ClientConfig, calls: int) -> float:
    config = ClientConfig(
        base_url="http://service.test",
        retry=config.retry,
        circuit_breaker=config.circuit_breaker,
    )
    transport = httpx.MockTransport(answer)
    async with ResilientClient(config, transport=transport) as client:
        for _ in range(50):
            await client.get("/x")
        started = time.perf_counter()
        for _ in range(calls):
            await client.get("/x")
        return (time.perf_counter() - started) / calls * 1e6


def measure_costs(calls: int, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in CONFIGS}
    for name in interleaved(list(CONFIGS), rounds):
        samples[name].append(trio.run(per_call_us, CONFIGS[name], calls))
    return samples


async def tail_latencies(calls: int) -> dict[str, list[float]]:
    """Seconds per call, without and with hedging, the same seeded slow calls."""
    latencies: dict[str, list[float]] = {}
    async with serve_in_background(ServerSettings(log_level="WARNING")) as url:
        faults = FaultClient(url)
        for name, hedging in (
            ("unhedged", None),
            ("hedged", HedgingConfig(HEDGE_DELAY)),
        ):
            await faults.clear()
            await faults.add(
                method="GET", path="/headers", delay_ms=SLOW_MS,
                probability=SLOW_SHARE, seed=14,
            )  # fmt: skip
            config = ClientConfig(
                base_url=url,
                hedging=hedging,
                bulkhead=BulkheadConfig(max_concurrency=10),
            )
            async with ResilientClient(config) as client:
                times = []
                for _ in range(calls):
                    started = trio.current_time()
                    await client.get("/headers")
                    times.append(trio.current_time() - started)
            latencies[name] = sorted(times)
    return latencies


def report(
    costs: dict[str, list[float]], tails: dict[str, list[float]]
) -> dict[str, Any]:
    medians = {name: statistics.median(values) for name, values in costs.items()}
    results: list[dict[str, Any]] = [
        {
            "name": f"client_{name}_call",
            "unit": "us/call",
            "median": medians[name],
            "min": min(values),
            "max": max(values),
            "samples": values,
        }
        for name, values in costs.items()
    ]
    tail = {
        name: {p: percentile_ms(times, p) for p in (50, 95, 99)}
        for name, times in tails.items()
    }
    for name, points in tail.items():
        p99 = points[99]
        results.append(
            {"name": f"{name}_p99", "unit": "ms", "median": p99, "min": p99,
             "max": p99, "percentiles": points}
        )  # fmt: skip
    ratios = {
        f"client_{name}_cost_vs_plain": medians[name] / medians["plain"]
        for name in ("budget", "window", "both")
    }
    ratios["hedged_p99_vs_unhedged"] = tail["hedged"][99] / tail["unhedged"][99]
    return {"results": results, "ratios": ratios}


def format_report(document: dict[str, Any]) -> str:
    lines = ["per call, in-memory transport (median of rounds):"]
    by_name = {r["name"]: r for r in document["results"]}
    for name in CONFIGS:
        r = by_name[f"client_{name}_call"]
        vs = (
            ""
            if name == "plain"
            else f"  x{r['median'] / by_name['client_plain_call']['median']:.3f}"
        )
        lines.append(f"  {name:<7} {r['median']:7.1f} µs/call{vs}")  # fmt: skip
    lines.append(
        f"\nlatency, {SLOW_SHARE:.0%} of GET /headers held {SLOW_MS} ms (seeded), hedge"
        f" after {HEDGE_DELAY * 1000:g} ms:"
    )
    for name in ("unhedged", "hedged"):
        points = by_name[f"{name}_p99"]["percentiles"]
        lines.append(
            f"  {name:<9} p50 {points[50]:6.1f} ms  p95 {points[95]:6.1f} ms"
            f"  p99 {points[99]:6.1f} ms"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    costs = measure_costs(size["calls"], size["rounds"])
    tails = trio.run(tail_latencies, size["tail_calls"])
    document = {
        "benchmark": "resilience",
        **environment("httpx"),
        **report(costs, tails),
    }
    print(format_report(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
