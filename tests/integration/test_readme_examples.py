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
