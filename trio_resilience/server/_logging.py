"""Structured logging with structlog: JSON lines or a console format."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog

LOGGER_NAME = "trio_resilience.server"


def get_logger(name: str = LOGGER_NAME) -> Any:
    """A structlog logger; rendering is decided by `configure_logging`."""
    return structlog.get_logger().bind(logger=name)


def configure_logging(
    *, level: str = "INFO", fmt: str = "json", file: Path | None = None
) -> None:
    """Render the server's own lines and the standard library's (Hypercorn's) alike.

    The server's lines take structlog's direct path (a filtering logger writing to
    the stream, flushed per line), which costs a fraction of a trip through the
    standard library's `logging`; Hypercorn's messages go through `logging` with a
    formatter using the same renderer. Called by the command line, not by
    `create_app`: an application embedding the server keeps its own logging setup.
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
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level]
        ),
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
