"""Run every benchmark (each with its baseline, same run) and report them together.

Run::

    python benchmarks/run.py [--quick] [--only NAME ...] [--out DIR]

(``just bench`` / ``just bench --quick``). Each benchmark script runs in its own
process with ``--json``; this runner shows progress, then writes to ``--out``
(default ``benchmarks/results``):

* ``latest.json``: the machine, every benchmark's figures with units, and ``ratios``
  (ours divided by the baseline, higher is better);
* ``latest.md``: the same as Markdown tables;
* ``latest.png``: one chart per benchmark, each subject next to its baseline;
* ``NAME.txt``: what each benchmark script printed.

Those are the committed results of a full run. A ``--quick`` run writes
``quick.json``, ``quick.md``, ``quick.png`` and ``quick-NAME.txt`` instead, so it
never replaces them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = {
    "primitives": "bench_primitives.py",
    "server": "bench_server.py",
    "client": "bench_client.py",
    "jobs": "bench_jobs.py",
    "redis": "bench_redis.py",
    "redis_jobs": "bench_redis_jobs.py",
    "resilience": "bench_resilience.py",
}
PACKAGES = (
    "trio",
    "trio-util",
    "httpx",
    "hypercorn",
    "quart",
    "quart-trio",
    "quart-schema",
    "pydantic",
    "structlog",
    "attrs",
    "coredis",
    "streaq",
    "aiohttp",
    "uvicorn",
)
BASELINE_NAMES = (
    "checkpoint",
    "capacity_limiter",
    "bare_quart",
    "raw_asgi",
    "httpx",
    "floor",
    "memory",
    "streaq",
    "aiohttp",
    "plain",
    "unhedged",
)
TARGETS = {
    "server_vs_bare_quart": 0.85,
    "faulted_vs_ours": 0.9,
    "faulted_vs_bare_quart": 0.9,
    "metrics_on_vs_off": 0.95,
    "client_vs_httpx_c1": 1.5,
    "client_vs_httpx_c10": 2.5,
    "client_vs_httpx_c50": 2.5,
    "jobs_vs_channel_floor": 0.5,
    "redis_jobs_vs_streaq": 1.0,
}
AT_MOST = {
    "redis_round_trips_per_fail_check": 1.0,
    "redis_round_trips_per_idempotent_hit": 1.0,
}
"""Targets of figures where lower is better (Redis round trips per operation)."""


def meets_target(name: str, value: float) -> bool | None:
    """Whether ``value`` meets ratio ``name``'s target; None if it has none."""
    if name in AT_MOST:
        return value <= AT_MOST[name]
    return None if name not in TARGETS else value >= TARGETS[name]


def target_text(name: str) -> str:
    if name in AT_MOST:
        return f"<= {AT_MOST[name]:g}"
    return "" if name not in TARGETS else f">= {TARGETS[name]:g}"


def report_paths(out: Path, quick: bool) -> dict[str, Path]:
    """Where a run writes its report, by suffix: ``latest.*`` for a full run (the
    committed results), ``quick.*`` for a quick one."""
    stem = "quick" if quick else "latest"
    return {suffix: out / f"{stem}.{suffix}" for suffix in ("json", "md", "png")}


def output_path(out: Path, name: str, quick: bool) -> Path:
    """Where benchmark ``name``'s printed output goes (``quick-NAME.txt`` if quick)."""
    return out / (f"quick-{name}.txt" if quick else f"{name}.txt")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu_model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
    }


def collect_ratios(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Every benchmark's ratios in one flat mapping (ours / baseline)."""
    ratios: dict[str, float] = {}
    for document in results.values():
        ratios.update(document.get("ratios", {}))
    primitives = results.get("primitives")
    if primitives is not None:
        by_name = {r["name"]: r for r in primitives["results"]}
        semaphore = by_name.get("semaphore_acquire_release")
        limiter = by_name.get("capacity_limiter_acquire_release")
        if semaphore and limiter:
            # times: the baseline's time over ours, so higher is better here too
            ratios["semaphore_vs_capacity_limiter"] = (
                limiter["median"] / semaphore["median"]
            )
    return ratios


def is_baseline(name: str) -> bool:
    return any(marker in name for marker in BASELINE_NAMES)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"{report['generated_at']} · {'quick' if report['quick'] else 'full'} run · "
        f"{m['cpu_count']} CPUs ({m['cpu_model'] or 'unknown CPU'}) · "
        f"Python {m['python']} · trio {m['packages'].get('trio')}",
        "",
        "## Ratios (ours / baseline, higher is better; round trips: lower is better)",
        "",
        "| ratio | value | target |",
        "| --- | ---: | ---: |",
    ]
    for name, value in report["ratios"].items():
        met = meets_target(name, value)
        mark = "" if met is None else (" ✓" if met else " ✗")
        lines.append(f"| `{name}` | {value:.3f}{mark} | {target_text(name)} |")
    for bench, document in report["benchmarks"].items():
        lines += [
            "",
            f"## {bench}",
            "",
            "| subject | median | min | max | unit |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for r in document["results"]:
            name = r["name"] + (" (baseline)" if is_baseline(r["name"]) else "")
            lines.append(
                f"| {name} | {r['median']:,.3f} | {r['min']:,.3f} | {r['max']:,.3f}"
                f" | {r['unit']} |"
            )
    return "\n".join(lines) + "\n"


def chart(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = report["benchmarks"]
    if not benches:  # every one skipped itself
        fig, ax = plt.subplots(figsize=(6, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no figures: every benchmark skipped itself", ha="center")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    fig, axes = plt.subplots(len(benches), 1, figsize=(10, 3.2 * len(benches)))
    if len(benches) == 1:
        axes = [axes]
    for ax, (bench, document) in zip(axes, benches.items(), strict=True):
        rows = document["results"]
        names = [r["name"] for r in rows]
        medians = [r["median"] for r in rows]
        errors = [
            [r["median"] - r["min"] for r in rows],
            [r["max"] - r["median"] for r in rows],
        ]
        colors = ["#9e9e9e" if is_baseline(n) else "#1f77b4" for n in names]
        ax.barh(names, medians, xerr=errors, color=colors, capsize=3)
        ax.invert_yaxis()
        ax.set_title(f"{bench} (grey: baselines; bars: median, whiskers: min-max)")
        ax.set_xlabel(rows[0]["unit"])
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(names: list[str], quick: bool, out: Path) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TimeElapsedColumn

    console = Console()
    results: dict[str, dict[str, Any]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Progress(
            SpinnerColumn(),
            "[progress.description]{task.description}",
            BarColumn(),
            "{task.completed}/{task.total}",
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        overall = progress.add_task("benchmarks", total=len(names))
        for name in names:
            progress.update(overall, description=f"running {name}")
            started = time.monotonic()
            completed, document = run_one(name, quick, out, Path(tmp))
            if document == {}:
                progress.console.print(
                    f"  {name}: skipped ({completed.stdout.strip()})"
                )
                progress.advance(overall)
                continue
            if document is None:
                progress.stop()
                console.print(completed.stdout[-3000:], completed.stderr[-3000:])
                raise SystemExit(f"benchmark {name} failed ({completed.returncode})")
            results[name] = document
            progress.console.print(
                f"  {name}: done in {time.monotonic() - started:.0f} s "
                f"(output in {out.name}/{output_path(out, name, quick).name})"
            )
            progress.advance(overall)
    return results


def run_one(
    name: str, quick: bool, out: Path, tmp: Path
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any] | None]:
    """Run benchmark ``name`` in its own process, its printed output kept in
    `output_path`; its JSON document, None if it failed, or ``{}`` if it skipped
    itself (exit 0 without writing one: what it needs is not installed)."""
    target = tmp / f"{name}.json"
    command = [sys.executable, str(HERE / BENCHMARKS[name]), "--json", str(target)]
    if quick:
        command.append("--quick")
    completed = subprocess.run(
        command, cwd=HERE.parent, capture_output=True, text=True, check=False
    )
    output_path(out, name, quick).write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0:
        return completed, None
    if not target.exists():
        return completed, {}
    document: dict[str, Any] = json.loads(target.read_text())
    return completed, document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short runs (< 2 min), written to quick.* (latest.* is left alone)",
    )
    parser.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(BENCHMARKS)
    started = time.monotonic()
    results = run(names, args.quick, args.out)
    report = {
        "generated_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "quick": args.quick,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine(),
        "ratios": collect_ratios(results),
        "benchmarks": results,
    }
    paths = report_paths(args.out, args.quick)
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["md"].write_text(markdown(report))
    chart(report, paths["png"])
    print()
    for name, value in report["ratios"].items():
        met = meets_target(name, value)
        verdict = "" if met is None else ("  ok" if met else "  target missed")
        print(f"{name:<34} {value:6.3f}{verdict}")
    print(f"\nwrote {', '.join(str(path) for path in paths.values())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
