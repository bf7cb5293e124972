"""serve_in_background: the real server in the caller's task tree."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import trio

from .._service import open_service_nursery
from ..server import ServerSettings, serve_forever


@asynccontextmanager
async def serve_in_background(
    settings: ServerSettings | None = None,
) -> AsyncIterator[str]:
    """Serve the test server while the block runs; yields its base URL.

    The server binds ``settings.host`` (default 127.0.0.1) on a port the system
    picks, whatever ``settings.port`` says, and the URL is yielded only once it
    accepts connections. Leaving the block shuts the server down gracefully (in-flight
    requests get ``settings.shutdown_grace_period``) and waits until it has stopped:
    no task is left behind. Errors raised in the block propagate unchanged.
    """
    settings = ServerSettings() if settings is None else settings
    settings = settings.model_copy(update={"port": 0})
    stop = trio.Event()
    async with open_service_nursery() as nursery:
        binds: list[str] = await nursery.start(
            partial(serve_forever, settings, shutdown_trigger=stop.wait)
        )
        try:
            yield binds[0]
        finally:
            stop.set()
