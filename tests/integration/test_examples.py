"""The example scripts run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "client_demo.py"


def test_client_demo_runs_against_its_own_server() -> None:
    """examples/client_demo.py --self-serve walks through every pattern, exit 0."""
    result = subprocess.run(
        [sys.executable, str(DEMO), "--self-serve"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "-> 200" in out
    assert "retrying in" in out
    assert "failed fast, no request sent: Circuit breaker is OPEN" in out
    assert "circuit HALF_OPEN -> CLOSED" in out
    assert out.count("rejected by the bulkhead") == 3
    assert "(replayed: true)" in out
    first, second = (
        line.split()[1]
        for line in out.splitlines()
        if line.strip().startswith(("first:", "second:"))
    )
    assert first == second
