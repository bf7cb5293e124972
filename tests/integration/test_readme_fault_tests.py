"""The pytest example of the README's "Testing your client against faults" runs
and passes: the block is written to a file of its own and run by pytest in a
subprocess, as a reader would run it (the fixtures come from the package's pytest11
entry point, the tests run on the real clock)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### Testing your client against faults"


def fault_tests() -> str:
    """The first python block after the section's heading, within the section."""
    text = README.read_text(encoding="utf-8")
    assert text.count(HEADING) == 1
    section = re.split(r"\n#{1,3} ", text.split(HEADING, 1)[1], maxsplit=1)[0]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None, "no python block in the section"
    return block.group(1)


def test_the_section_sits_in_the_test_server_chapter() -> None:
    text = README.read_text(encoding="utf-8")
    chapters = re.split(r"\n## ", text)
    [chapter] = [c for c in chapters if HEADING in c]
    assert chapter.startswith("The test server\n")
    assert chapter.index("### Testing your own client against it") < chapter.index(
        HEADING
    )


def test_the_readme_fault_tests_pass(tmp_path: Path) -> None:
    code = fault_tests()
    assert "resilience_server" in code
    assert "resilience_faults" in code
    (tmp_path / "test_readme_faults.py").write_text(code, encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "test_readme_faults.py",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout, result.stdout
