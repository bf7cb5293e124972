"""serve_in_background: the real server in the caller's task tree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

from .._service import open_service_nursery
from ..server import ServerSettings, serve_forever

SHUTDOWN_MARGIN = 1.0
"""Seconds past the grace period the server gets to stop before it is cancelled."""


@asynccontextmanager
async def serve_in_background(
    settings: ServerSettings | None = None,
) -> AsyncIterator[str]:
    """Serve the test server while the block runs; yields its base URL.

    The server binds ``settings.host`` (default 127.0.0.1) on a port the system
    picks, whatever ``settings.port`` says, and the URL is yielded only once it
    accepts connections. Leaving the block shuts the server down gracefully: it
    stops accepting connections, closes idle ones, and in-flight requests get
    ``settings.shutdown_grace_period`` seconds to finish; only a server still
    running a second after that is cancelled. The block exits once the server has
    stopped: no task is left behind. Errors raised in the block propagate unchanged
    (if the server failed too, its error is attached, as `open_service_nursery`
    does).

    The server's log lines (start, stop, one per request) and Hypercorn's follow
    ``settings.log_level``: lines below it are dropped in this server's own tasks,
    so each server has its level and the rest of the program logs as before.
    Nothing is configured: the lines that pass are rendered by the program's
    structlog and `logging` setup (``structlog.testing.capture_logs`` sees them),
    so ``log_format`` and ``log_file``, which set up a whole process, apply only to
    the command line; call ``configure_logging`` to get its rendering here too.
    """
    settings = ServerSettings() if settings is None else settings
    settings = settings.model_copy(update={"port": 0})
    stop = trio.Event()
    drain_for = settings.shutdown_grace_period + SHUTDOWN_MARGIN
    async with open_service_nursery(drain_for=drain_for) as nursery:
        binds: list[str] = await nursery.start(
            partial(serve_forever, settings, shutdown_trigger=stop.wait)
        )
        try:
            yield binds[0]
        finally:
            stop.set()  # the server drains; it is cancelled only if it overstays
