"""benchmarks/run.py: merging the benchmarks' ratios and rendering the table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
        "ratios": {"server_vs_bare_quart": 0.8, "client_vs_httpx_c1": 0.95},
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
    assert "| `client_vs_httpx_c1` | 0.950 ✓ | >= 0.9 |" in text
    assert "| bare_quart (baseline) |" in text
    assert "| ours |" in text
