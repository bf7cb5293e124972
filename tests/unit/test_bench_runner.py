"""benchmarks/run.py: merging the benchmarks' ratios and rendering the table."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_runner", RUNNER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_runner"] = module
    spec.loader.exec_module(module)
    return module


def result(name: str, median: float, unit: str) -> dict[str, object]:
    return {"name": name, "median": median, "min": median, "max": median, "unit": unit}


def test_ratios_are_merged_and_the_semaphore_ratio_derived() -> None:
    """Every benchmark's ratios end up in one mapping, plus time-based ones."""
    runner = load_runner()
    results = {
        "server": {"ratios": {"server_vs_bare_quart": 0.9}, "results": []},
        "primitives": {
            "results": [
                result("semaphore_acquire_release", 5.0, "us/op"),
                result("capacity_limiter_acquire_release", 4.0, "us/op"),
            ]
        },
    }
    ratios = runner.collect_ratios(results)
    assert ratios == {"server_vs_bare_quart": 0.9, "semaphore_vs_capacity_limiter": 0.8}


def test_markdown_marks_targets_and_baselines() -> None:
    """The Markdown report flags missed targets and labels baselines."""
    runner = load_runner()
    report = {
        "generated_at": "now",
        "quick": True,
        "machine": {"cpu_count": 2, "cpu_model": "x", "python": "3.11", "packages": {}},
        "ratios": {"server_vs_bare_quart": 0.8, "client_vs_httpx_c1": 1.6},
        "benchmarks": {
            "server": {
                "results": [
                    result("ours", 10, "req/s"),
                    result("bare_quart", 12, "req/s"),
                ]
            }
        },
    }
    text = runner.markdown(report)
    assert "| `server_vs_bare_quart` | 0.800 ✗ | >= 0.85 |" in text
    assert "| `client_vs_httpx_c1` | 1.600 ✓ | >= 1.5 |" in text
    assert "| bare_quart (baseline) |" in text
    assert "| ours |" in text


REAL_RUN = subprocess.run


def fake_benchmark_process(
    command: list[str], **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Stands in for one benchmark script: writes its --json document (any other
    command, such as the platform module's, runs for real)."""
    if "--json" not in command:
        return REAL_RUN(command, **kwargs)
    target = Path(command[command.index("--json") + 1])
    quick = "--quick" in command
    document = {"results": [result("ours", 1.0, "req/s")], "ratios": {"x": 1.0}}
    target.write_text(json.dumps(document))
    return subprocess.CompletedProcess(command, 0, f"printed quick={quick}\n", "")


def run_main(
    runner: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp: Path, *args: str
) -> None:
    """The runner's main with fake benchmark processes and a fake chart (neither
    rich nor matplotlib is needed)."""
    monkeypatch.setattr(runner.subprocess, "run", fake_benchmark_process)
    monkeypatch.setattr(
        runner,
        "run",
        lambda names, quick, out: {
            name: runner.run_one(name, quick, out, tmp)[1] for name in names
        },
    )
    monkeypatch.setattr(runner, "chart", lambda report, path: path.write_bytes(b"png"))
    assert runner.main([*args, "--out", str(tmp / "results")]) == 0


COMMITTED = ("latest.json", "latest.md", "latest.png", "server.txt", "jobs.txt")


def test_quick_runs_leave_the_committed_results_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--quick writes quick.* and quick-NAME.txt; latest.* and NAME.txt, the
    committed full results, are left byte for byte as they were."""
    runner = load_runner()
    results = tmp_path / "results"
    results.mkdir()
    for name in COMMITTED:
        (results / name).write_text(f"committed {name}")
    run_main(runner, monkeypatch, tmp_path, "--quick", "--only", "server", "jobs")
    for name in COMMITTED:
        assert (results / name).read_text() == f"committed {name}"
    report = json.loads((results / "quick.json").read_text())
    assert report["quick"] is True
    assert set(report["benchmarks"]) == {"server", "jobs"}
    assert (results / "quick.md").read_text().startswith("# Benchmark results")
    assert (results / "quick.png").read_bytes() == b"png"
    assert (results / "quick-server.txt").read_text() == "printed quick=True\n"
    written = [
        "quick.json",
        "quick.md",
        "quick.png",
        "quick-server.txt",
        "quick-jobs.txt",
    ]
    assert sorted(p.name for p in results.iterdir()) == sorted([*COMMITTED, *written])


def test_full_runs_write_the_committed_results(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A full run replaces latest.* and NAME.txt and writes no quick.* file."""
    runner = load_runner()
    run_main(runner, monkeypatch, tmp_path, "--only", "server")
    results = tmp_path / "results"
    assert json.loads((results / "latest.json").read_text())["quick"] is False
    assert (results / "server.txt").read_text() == "printed quick=False\n"
    assert sorted(p.name for p in results.iterdir()) == [
        "latest.json",
        "latest.md",
        "latest.png",
        "server.txt",
    ]
