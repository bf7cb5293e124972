"""Serving an app with Hypercorn's Trio worker, with graceful shutdown on signals."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Awaitable, Callable

import trio
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from .._exceptions import leaf_exceptions
from .._log_threshold import add_threshold_filter, bind_log_threshold
from ._app import create_app
from ._logging import get_logger
from ._settings import ServerSettings


def hypercorn_config(settings: ServerSettings) -> Config:
    """Hypercorn's configuration for ``settings``: bind address, grace period and
    keep-alive timeout.

    Hypercorn's own access log is off (the app logs one line per request itself).
    """
    config = Config()
    host = settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    config.bind = [f"{host}:{settings.port}"]
    config.graceful_timeout = settings.shutdown_grace_period
    config.keep_alive_timeout = settings.keep_alive_timeout
    # Hypercorn closes a connection after its 1000th request by default, and on
    # Trio that close races the response's last write: a BusyResourceError,
    # logged as an unhandled error. Connections here end by keep_alive_timeout,
    # Connection: close, or shutdown.
    config.keep_alive_max_requests = sys.maxsize
    config.accesslog = None
    # Hypercorn's messages go through the standard library, so the renderer set up
    # by `configure_logging` formats them like the server's own lines.
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def wait_for_shutdown_signal() -> None:
    """Return on the first SIGINT or SIGTERM, logging which one came."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            get_logger().info("shutdown requested", signal=signal.Signals(signum).name)
            return


async def serve_forever(
    settings: ServerSettings,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]] = wait_for_shutdown_signal,
    sockets: Sockets | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown_trigger`` returns, then stop accepting connections and
    give in-flight requests ``settings.shutdown_grace_period`` seconds to finish.

    Idle connections are closed at once; responses sent during the grace period
    carry ``Connection: close`` and close theirs.

    The server's lines (its own and Hypercorn's) below ``settings.log_level`` are
    dropped in the tasks of this server only (see `bind_log_threshold`), so a
    server embedded in a program follows its settings without reconfiguring the
    program's logging; rendering (``log_format``, ``log_file``) is set up by
    `configure_logging`, which the command line calls.
    """
    app = create_app(settings)
    config = hypercorn_config(settings)
    if isinstance(config.errorlog, logging.Logger):
        add_threshold_filter(config.errorlog)  # passes all outside a server's tasks

    failed = trio.Event()
    app.state.on_background_failure = failed.set

    async def stop_when_triggered() -> None:
        """Return on the trigger, or once a background task of the app failed."""
        async with trio.open_nursery() as nursery:

            async def first(wait: Callable[[], Awaitable[object]]) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(first, shutdown_trigger)
            nursery.start_soon(first, failed.wait)
        app.state.shutting_down = True

    with bind_log_threshold(settings.log_level):
        await worker_serve(
            wrap_app(app, config.wsgi_max_body_size, None),
            config,
            sockets=sockets,
            shutdown_trigger=stop_when_triggered,
            task_status=task_status,
        )
    failure = app.state.background_failure
    if failure is not None:
        reasons = "; ".join(
            f"{type(leaf).__name__}: {leaf}" for leaf in leaf_exceptions(failure)
        )
        raise RuntimeError(
            f"the server stopped: a background task failed: {reasons}"
        ) from failure
