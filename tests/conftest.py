"""Shared test configuration.

Tests under ``tests/unit`` are marked ``unit`` and must run on virtual time: every
async unit test requests ``autojump_clock`` (pytest-trio's
``MockClock(autojump_threshold=0)``) or ``mock_clock``; collection fails otherwise.
Tests under ``tests/integration`` are marked ``integration``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

_HERE = Path(__file__).parent
_CLOCKS = {"autojump_clock", "mock_clock"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath))
        if _HERE / "unit" in path.parents:
            item.add_marker(pytest.mark.unit)
            function = getattr(item, "function", None)
            fixtures = set(getattr(item, "fixturenames", ()))
            if inspect.iscoroutinefunction(function) and not fixtures & _CLOCKS:
                raise pytest.UsageError(
                    f"{item.nodeid}: async unit tests must run on virtual time; "
                    "request the autojump_clock fixture"
                )
        elif _HERE / "integration" in path.parents:
            item.add_marker(pytest.mark.integration)
