"""Structured logging with structlog: JSON lines or a console format."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import structlog

LOGGER_NAME = "trio_resilience.server"


def get_logger(name: str = LOGGER_NAME) -> Any:
    """A structlog logger; rendering is decided by `configure_logging`."""
    return structlog.get_logger(name)


def configure_logging(
    *, level: str = "INFO", fmt: str = "json", file: Path | None = None
) -> None:
    """Route structlog and the standard library's logging through one renderer.

    Called by the command line, not by `create_app`: an application embedding the
    server (or a test suite) keeps its own logging configuration.
    """
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.dict_tracebacks)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            renderer,
        ],
    )
    handler: logging.Handler
    if file is None:
        handler = logging.StreamHandler(sys.stdout)
    else:
        handler = logging.FileHandler(file, encoding="utf-8")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
