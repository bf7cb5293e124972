"""Structured logging with structlog: JSON lines or a console format.

Two ways the server's lines are handled:

- The command line owns its process, so it calls `configure_logging`, which sets
  structlog's and the standard library's configuration for the whole process:
  level, format (``log_format``) and destination (``log_file``).
- Embedded (``serve_in_background``, the pytest plugin), the program owns logging.
  The server's lines still follow ``log_level``, per server: its loggers are
  `ServerLogger` objects that drop lines below the threshold bound to the task
  tree that serves it (see `trio_resilience._log_threshold`), before structlog
  sees them. What passes is rendered by the program's own structlog setup, so
  ``log_format`` and ``log_file``, which choose the rendering of a whole process,
  are not applied there.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog

from .._log_threshold import current_log_threshold, log_level_number

LOGGER_NAME = "trio_resilience.server"

_DEBUG = logging.DEBUG
_INFO = logging.INFO
_WARNING = logging.WARNING
_ERROR = logging.ERROR
_CRITICAL = logging.CRITICAL


class ServerLogger:
    """The server's structlog logger, behind its task tree's log threshold.

    A line below `current_log_threshold()` is dropped at once (nothing is
    formatted); any other line goes to the wrapped structlog logger unchanged, so
    structlog's configuration, including ``structlog.testing.capture_logs``,
    decides the rest. Not a structlog wrapper class: it only has the methods the
    server uses.
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: Any) -> None:
        self._logger = logger

    def bind(self, **values: Any) -> ServerLogger:
        """A logger adding ``values`` to every line."""
        return ServerLogger(self._logger.bind(**values))

    def debug(self, event: str, *args: Any, **values: Any) -> None:
        if current_log_threshold() <= _DEBUG:
            self._logger.debug(event, *args, **values)

    def info(self, event: str, *args: Any, **values: Any) -> None:
        if current_log_threshold() <= _INFO:
            self._logger.info(event, *args, **values)

    def warning(self, event: str, *args: Any, **values: Any) -> None:
        if current_log_threshold() <= _WARNING:
            self._logger.warning(event, *args, **values)

    def error(self, event: str, *args: Any, **values: Any) -> None:
        if current_log_threshold() <= _ERROR:
            self._logger.error(event, *args, **values)

    def exception(self, event: str, *args: Any, **values: Any) -> None:
        """An ERROR line with the exception being handled."""
        if current_log_threshold() <= _ERROR:
            self._logger.exception(event, *args, **values)

    def critical(self, event: str, *args: Any, **values: Any) -> None:
        if current_log_threshold() <= _CRITICAL:
            self._logger.critical(event, *args, **values)


def get_logger(name: str = LOGGER_NAME) -> ServerLogger:
    """The server's logger; rendering is decided by `configure_logging` (or by the
    embedding program's structlog setup), the level also by the task tree."""
    return ServerLogger(structlog.get_logger().bind(logger=name))


def configure_logging(
    *, level: str = "INFO", fmt: str = "json", file: Path | None = None
) -> None:
    """Render the server's own lines and the standard library's (Hypercorn's) alike.

    The server's lines take structlog's direct path (a filtering logger writing to
    the stream, flushed per line), which costs a fraction of a trip through the
    standard library's `logging`; Hypercorn's messages go through `logging` with a
    formatter using the same renderer. Called by the command line, not by
    `create_app` or ``serve_in_background``: an application embedding the server
    keeps its own logging setup.
    """
    stream: TextIO = sys.stdout if file is None else open(file, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process's logging
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "json":
        shared.append(structlog.processors.dict_tracebacks)
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(log_level_number(level)),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
