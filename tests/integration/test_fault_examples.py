"""The examples/fault_*.py scripts run as documented: exit 0, saying what happened."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEY_LINES = {
    "fault_retry_after.py": "gap between attempts: ",
    "fault_reset.py": "reset on attempt 1, retried: 200 on attempt 2",
    "fault_hang.py": "hung attempt ended by the 0.3s read timeout, retried: 200",
    "fault_drip.py": "no read timeout (0.3s per read, not per response)",
    "fault_truncate.py": "truncated body on attempt 1, retried: whole 200 on attempt 2",
    "fault_commit_then_fail.py": "items on the server: 1 (widget)",
    "fault_flaky.py": "same sequence twice: ",
}


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[str, subprocess.Popen[str]]]:
    """Every script, started at once: each has its own server on a free port, so
    the module takes about as long as the slowest (the Retry-After one, ~2 s)."""
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in KEY_LINES
    }
    yield processes
    for process in processes.values():
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_every_fault_example_is_run() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("fault_*.py")) == sorted(
        KEY_LINES
    )


@pytest.mark.parametrize("name", sorted(KEY_LINES))
def test_fault_example_succeeds(
    name: str, runs: dict[str, subprocess.Popen[str]]
) -> None:
    out, err = runs[name].communicate(timeout=60)
    assert runs[name].returncode == 0, f"{out}\n{err}"
    assert KEY_LINES[name] in out, out
    assert out.splitlines()[-1] == "OK"


def test_a_failed_check_exits_1_with_the_reason() -> None:
    code = (
        "from _fault_example import check, run\n"
        "async def main():\n"
        "    check(False, 'the client gave up')\n"
        "run(main)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "FAILED: the client gave up"
    assert "OK" not in result.stdout
