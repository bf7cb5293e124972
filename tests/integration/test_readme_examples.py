"""The README's Python examples run as written, on the real clock, in under 1 s."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_has_examples() -> None:
    """The README shows each primitive in code."""
    code = "\n".join(EXAMPLES)
    for name in ("Backoff", "retry", "CircuitBreaker", "TokenBucketRateLimiter"):
        assert name in code


@pytest.mark.parametrize("code", EXAMPLES, ids=lambda code: code.split("\n")[0][:40])
def test_readme_example_runs(code: str) -> None:
    """Each example block executes without error."""
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})


def quick_start_commands() -> list[str]:
    """The shell commands of the README's Quick start, one per line."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 1, blocks
    return [line for line in blocks[0].splitlines() if line.strip()]


def test_quick_start_is_two_commands() -> None:
    """The Quick start is exactly two one-line shell commands, no continuations or
    comments."""
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    for command in commands:
        assert not command.rstrip().endswith("\\")
        assert not command.lstrip().startswith("#")


def test_quick_start_installs_into_a_virtual_environment() -> None:
    """Line 1 creates and activates .venv before pip runs (a system Python that is
    externally managed refuses pip), installs the dev extra, then serves."""
    steps = quick_start_commands()[0].split(" && ")
    assert steps[:2] == ["python3 -m venv .venv", ". .venv/bin/activate"]
    assert steps[2:] == ["pip install -e '.[dev]'", "trio-resilience serve"]


def test_quick_start_tests_run_in_a_fresh_shell() -> None:
    """Line 2 runs pytest with the .venv's Python, so it works in a new terminal
    where nothing was activated."""
    assert quick_start_commands()[1] == ".venv/bin/python -m pytest"
