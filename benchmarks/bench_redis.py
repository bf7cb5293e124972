"""GET /msg with the server's state in memory or in Redis, and the Redis round trips
one request costs.

Run::

    python benchmarks/bench_redis.py [--quick] [--json PATH] [--duration S]
                                     [--repeats N] [--requests K]

It starts a ``redis-server`` of its own (free port, temporary directory, no
persistence; if none is installed it says so and exits 0 with no figures), then:

1. req/s of ``memory`` (``python -m trio_resilience serve``), ``redis_1w`` (``serve
   --workers 1 --state-url redis://...``) and ``redis_2w`` (``--workers 2``), in
   interleaved rounds (rotating order, a fresh server and a flushed Redis each run),
   under `bench_server`'s load generator; not pinned (they all share the CPUs);
2. on a fresh ``redis_1w``, Redis round trips per ``GET /msg`` over K sequential
   requests: ``plain_msg`` (nothing armed, no request id), ``fail_check`` (``POST
   /fail/count/1000000`` first), ``replay`` (an ``X-Request-ID`` already answered).
   Round trips: what clients sent (``MONITOR``, less what runs inside Lua); commands
   run: ``INFO commandstats`` after ``CONFIG RESETSTAT`` (inside Lua included). Both
   less the job queue's background polling, as measured in an idle window.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from _common import (
    HOST,
    PATH,
    BenchmarkError,
    ServerProcess,
    environment,
    exit_on_sigterm,
    free_port,
    median_or_none,
    percent,
    process_tree_cpu_seconds,
    redis_cli,
    redis_server,
    start_process,
    stopped_on_exit,
    verify_message,
)
from bench_server import CONNECTIONS, LoadGenerator, Pinning, choose_load_generator

FULL = {"duration": 10, "repeats": 3, "warmup": 2, "requests": 2000}
QUICK = {"duration": 3, "repeats": 1, "warmup": 1, "requests": 300}
CONFIGS = {"memory": 0, "redis_1w": 1, "redis_2w": 2}
"""Name: worker processes sharing Redis (0: state in memory, one process)."""
IDLE_S = 2.0
SETTLE_S = 0.3
TARGET_ROUND_TRIPS = 1.0
OURS = {"config", "info", "echo", "flushall", "ping"}
"""Commands this script sends itself (through ``redis-cli``), never counted."""


def commandstats(port: int) -> Counter[str]:
    found = re.findall(
        r"^cmdstat_([^:]+):calls=(\d+)", redis_cli(port, "INFO", "commandstats"), re.M
    )
    return Counter({n: int(c) for n, c in found if n.split("|")[0] not in OURS})


def monitor(port: int) -> BinaryIO:
    """A connection in ``MONITOR`` mode: Redis sends it a line per command run."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(b"MONITOR\r\n")
        lines = sock.makefile("rb")  # keeps the connection open after the with
    if lines.readline() != b"+OK\r\n":
        raise BenchmarkError("MONITOR was refused")
    return lines


def sent_since(lines: BinaryIO, port: int) -> Counter[str]:
    """The commands clients sent since `monitor` (``evalsha`` by the first 8 hex
    digits of its script's SHA1); closes ``lines``."""
    marker = f"bench-redis-end-{time.monotonic_ns()}"
    redis_cli(port, "ECHO", marker)
    sent: Counter[str] = Counter()
    with lines:
        for line in map(bytes.decode, lines):
            if marker in line:
                return sent
            match = re.match(r'\+[\d.]+ \[\d+ (\S+)\] "(\w+)"(?: "(\w*))?', line)
            if match and match[1] != "lua" and (name := match[2].lower()) not in OURS:
                if name == "evalsha":
                    name += " " + match[3][:8]
                sent[name] += 1
    raise BenchmarkError("the MONITOR connection closed")


@contextlib.contextmanager
def our_server(config: str, tmp: Path, redis: int, run: int) -> Iterator[ServerProcess]:
    port, output = free_port(), tmp / f"{config}-{run}.out"
    argv = [sys.executable, "-m", "trio_resilience", "serve", "--host", HOST]
    argv += ["--port", str(port), "--log-level", "warning"]
    if workers := CONFIGS[config]:
        redis_cli(redis, "FLUSHALL")
        argv += ["--workers", str(workers), "--state-url", f"redis://{HOST}:{redis}/0"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVER_")}
    # In the temporary directory, so no stray .env file is read.
    process = start_process(argv, tmp, output, env)
    with stopped_on_exit(ServerProcess(port, process, output), config) as server:
        verify_message(port, f"{config}: ")
        yield server


def cpu_seconds(*servers: ServerProcess) -> list[float | None]:
    return [process_tree_cpu_seconds(server.process.pid) for server in servers]


def measure_throughput(
    args: argparse.Namespace, tmp: Path, redis: ServerProcess, gen: LoadGenerator
) -> dict[str, list[dict[str, Any]]]:
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in CONFIGS}
    names, total = list(CONFIGS), args.repeats * len(CONFIGS)
    for round_no in range(args.repeats):
        shift = round_no % len(names)
        for config in names[shift:] + names[:shift]:
            run = sum(map(len, samples.values())) + 1
            with our_server(config, tmp, redis.port, run) as server:
                gen.run(server.port, args.connections, args.warmup)
                before, start = cpu_seconds(server, redis), time.perf_counter()
                load = gen.run(server.port, args.connections, args.duration)
                wall = time.perf_counter() - start
                after = cpu_seconds(server, redis)
                verify_message(server.port, f"{config}: ")
            cpu = [
                None if a is None or b is None else (a - b) / wall
                for a, b in zip(after, before, strict=True)
            ]
            samples[config].append({"load": load, "cpu": cpu, "exit": server.exit_code})
            print(
                f"  [{run}/{total}] {config:<9} {load.requests_per_s:>8,.0f} req/s  "
                f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms  "
                f"errors {load.error_count}",
                file=sys.stderr,
            )
    return samples


def count(
    redis: int, http_port: int, k: int, headers: dict[str, str], status: int
) -> tuple[Counter[str], Counter[str], float]:
    """Commands sent (MONITOR) and run (commandstats) while ``k`` sequential
    ``GET /msg`` were answered ``status``, and the seconds that took (``k == 0``:
    an idle window). Before and after: `SETTLE_S` for work the server does after
    answering (a journal entry written in the background, say)."""
    time.sleep(SETTLE_S)
    lines = monitor(redis)
    redis_cli(redis, "CONFIG", "RESETSTAT")
    start = time.monotonic()
    time.sleep(0 if k else IDLE_S)
    conn = http.client.HTTPConnection(HOST, http_port, timeout=10)
    for _ in range(k):
        conn.request("GET", PATH, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != status:
            raise BenchmarkError(f"GET {PATH} {headers}: {response.status}")
    conn.close()
    time.sleep(SETTLE_S)
    elapsed, run = time.monotonic() - start, commandstats(redis)
    return sent_since(lines, redis), run, elapsed


def measure_round_trips(tmp: Path, redis: int, k: int) -> dict[str, Any]:
    def post(path: str) -> None:
        conn = http.client.HTTPConnection(HOST, server.port, timeout=10)
        conn.request("POST", path)
        conn.getresponse().read()
        conn.close()

    def per_op(counts: Counter[str]) -> dict[str, float]:
        return {name: round(n / k, 3) for name, n in sorted(counts.items()) if n > 0}

    operations = {
        "plain_msg": ({}, 200, None),
        "fail_check": ({}, 500, "/fail/count/1000000"),
        "replay": ({"X-Request-ID": "x"}, 200, None),
    }
    figures: dict[str, Any] = {}
    with our_server("redis_1w", tmp, redis, 0) as server:
        # Warm-up: the scripts loaded, the answer for "x" stored.
        for headers in ({}, {"X-Request-ID": "warm-up"}, {"X-Request-ID": "x"}):
            count(redis, server.port, 3, headers, 200)
        idle_sent, idle_run, idle_s = count(redis, server.port, 0, {}, 0)
        for name, (headers, status, arm) in operations.items():
            if arm:
                post(arm)
            sent, run, elapsed = count(redis, server.port, k, headers, status)
            if arm:
                post("/fail/reset")
            left_out = {cmd: sent.pop(cmd) for cmd in idle_sent if cmd in sent}
            run.subtract({c: round(n * elapsed / idle_s) for c, n in idle_run.items()})
            figures[name] = {
                "round_trips_per_op": sum(sent.values()) / k,
                "round_trips_by_command": per_op(sent),
                "commands_run_per_op": sum((+run).values()) / k,
                "commands_run_by_name": per_op(run),
                "background_left_out": left_out,
                "requests": k,
            }
    background = {c: round(n / idle_s, 2) for c, n in sorted(idle_sent.items())}
    return {"operations": figures, "background_per_s": background}


def build_results(samples: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    results = []
    for name, runs in samples.items():
        loads = [s["load"] for s in runs]
        rates = [load.requests_per_s for load in loads]
        results.append(
            {
                "name": name,
                "unit": "req/s",
                "median": statistics.median(rates),
                "min": min(rates),
                "max": max(rates),
                "samples": rates,
                "p50_ms": statistics.median(load.p50_ms for load in loads),
                "p99_ms": statistics.median(load.p99_ms for load in loads),
                "errors": sum(load.error_count for load in loads),
                "exit_codes": [s["exit"] for s in runs],
                "server_cpu": median_or_none(s["cpu"][0] for s in runs),
                "redis_cpu": median_or_none(s["cpu"][1] for s in runs if CONFIGS[name]),
                "generator_cpu": median_or_none(load.generator_cpu for load in loads),
            }
        )
    return results


def format_report(d: dict[str, Any]) -> str:
    lines = [
        f"GET {PATH}, server state in memory vs in Redis {d['redis_version']}: "
        f"{d['connections']} connections, {d['repeats']} x {d['duration_s']} s per "
        f"server (after {d['warmup_s']} s of warm-up), interleaved",
        f"load generator: {d['load_generator']}",
        f"NOTE: {d['cpu_count']} CPUs, not pinned: the server's worker(s), "
        "redis-server and the load generator (which needs CPU too) share them;",
        "      redis_2w cannot scale 2x on this machine.",
        "",
        f"{'server':<9} {'median':>7} {'min':>7} {'max':>7} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'errors':>6} {'srv CPU':>7} {'redis CPU':>9} {'gen CPU':>7}",
    ]
    for r in d["results"]:
        lines.append(
            f"{r['name']:<9} {r['median']:>7,.0f} {r['min']:>7,.0f} {r['max']:>7,.0f} "
            f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['errors']:>6} "
            f"{percent(r['server_cpu']):>7} {percent(r['redis_cpu']):>9} "
            f"{percent(r['generator_cpu']):>7}"
        )
    ratios, trips = d["ratios"], d["round_trips"]
    lines += [
        "",
        f"redis_1w / memory = {ratios['redis_1w_vs_memory']:.3f}",
        f"redis_2w / memory = {ratios['redis_2w_vs_memory']:.3f}",
        "",
        f"Redis per GET {PATH} (redis_1w, {d['requests']:,} sequential requests per "
        f"operation; target <= {TARGET_ROUND_TRIPS:g} round trip per check / hit):",
    ]
    for name, f in trips["operations"].items():
        sent = ", ".join(f"{c} {n:g}" for c, n in f["round_trips_by_command"].items())
        run = ", ".join(f"{c} {n:g}" for c, n in f["commands_run_by_name"].items())
        lines += [
            f"  {name:<10} round trips {f['round_trips_per_op']:.3f} ({sent})",
            f"  {'':<10} commands run {f['commands_run_per_op']:.3f}, inside Lua "
            f"included ({run})",
        ]
    idle = ", ".join(f"{c} {n:g}/s" for c, n in trips["background_per_s"].items())
    hit = ratios["redis_round_trips_per_idempotent_hit"]
    lines += [
        "plain_msg: the Redis cost of every GET /msg (the failure check runs on "
        f"each); replay - plain_msg: {hit:.3f} round trips per idempotent hit.",
        f"left out, the job queue's background polling: {idle or 'none'}",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke test")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write JSON")
    parser.add_argument("--duration", type=int, metavar="S", help="seconds per run")
    parser.add_argument("--repeats", type=int, metavar="N", help="runs per server")
    parser.add_argument("--requests", type=int, metavar="K", help="per operation")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, metavar="N")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if min(args.duration, args.repeats, args.requests, args.connections) < 1:
        parser.error("--duration, --repeats, --requests and --connections: >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        print("bench_redis: redis-server is not installed: skipped, no figures")
        return 0
    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        generator, note = choose_load_generator("auto", Pinning([], [], "not pinned"))
        if note:
            print(f"NOTE: {note}", file=sys.stderr)
        with (
            tempfile.TemporaryDirectory(prefix="bench_redis-") as tmp,
            redis_server(Path(tmp)) as redis,
        ):
            version = re.findall(r"redis_version:(\S+)", redis_cli(redis.port, "INFO"))
            samples = measure_throughput(args, Path(tmp), redis, generator)
            trips = measure_round_trips(Path(tmp), redis.port, args.requests)
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every server was stopped", file=sys.stderr)
        return 130
    results = build_results(samples)
    median = {r["name"]: r["median"] for r in results}
    ops = {n: f["round_trips_per_op"] for n, f in trips["operations"].items()}
    document: dict[str, Any] = {
        "benchmark": "redis",
        **environment("hypercorn", "quart", "coredis"),
        "redis_version": version[0] if version else "unknown",
        "load_generator": generator.description,
        "pinned": False,
        "note": note,
        **{k: vars(args)[k] for k in ("connections", "repeats", "requests")},
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "results": results,
        "ratios": {
            "redis_1w_vs_memory": median["redis_1w"] / median["memory"],
            "redis_2w_vs_memory": median["redis_2w"] / median["memory"],
            **{f"redis_round_trips_per_{name}": n for name, n in ops.items()},
            "redis_round_trips_per_idempotent_hit": ops["replay"] - ops["plain_msg"],
        },
        "round_trips": trips,
        "target_round_trips_per_op": TARGET_ROUND_TRIPS,
    }
    print()
    print(format_report(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
