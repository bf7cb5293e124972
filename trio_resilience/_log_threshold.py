"""A log threshold for one task tree, so that an embedded component logs at its level.

A component running inside someone else's program (the test server inside a test
suite) must not reconfigure that program's logging, yet its own settings say which
of its lines are worth emitting. `bind_log_threshold` sets a threshold in the
current task's context; tasks started from that task afterwards inherit it (Trio
copies the context into every new task), and no other task sees it. The
component's loggers ask `current_log_threshold` before they emit, and
`ThresholdFilter` does the same for a standard-library logger. Outside every bound
task tree the threshold is ``logging.NOTSET``: nothing is dropped.

It is not a logging configuration: it only drops lines, it never renders or routes
them, and a line that passes still has to pass the program's own levels.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_THRESHOLD: ContextVar[int] = ContextVar(
    "trio_resilience_log_threshold", default=logging.NOTSET
)


def log_level_number(level: str | int) -> int:
    """The number of a level name (``"INFO"``, any case) or a level number."""
    if isinstance(level, bool) or not isinstance(level, str | int):
        raise TypeError(
            f"log level must be a str or an int, not {type(level).__name__}"
        )
    if isinstance(level, int):
        return level
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def current_log_threshold() -> int:
    """The threshold of the task tree this runs in (``logging.NOTSET`` if none)."""
    return _THRESHOLD.get()


@contextmanager
def bind_log_threshold(level: str | int) -> Iterator[None]:
    """Drop lines below ``level`` in this task, and in the tasks it starts meanwhile.

    The threshold is restored when the block exits. Use it at the top of the task
    that owns the component (the task that serves it), so that the caller's own
    task never carries it.
    """
    token = _THRESHOLD.set(log_level_number(level))
    try:
        yield
    finally:
        _THRESHOLD.reset(token)


class ThresholdFilter(logging.Filter):
    """A `logging.Filter` dropping records below the threshold of the task tree
    that logs them; outside a bound tree it lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= _THRESHOLD.get()


def add_threshold_filter(logger: logging.Logger) -> None:
    """Put one `ThresholdFilter` on ``logger`` (a second call adds nothing).

    Its handlers, levels and propagation are left as they are, so records logged
    outside a bound task tree are handled exactly as before.
    """
    if not any(isinstance(existing, ThresholdFilter) for existing in logger.filters):
        logger.addFilter(ThresholdFilter())
