"""Command line: ``trio-resilience serve`` and ``trio-resilience config-info``."""

from __future__ import annotations

import errno
import gc
import json
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import click
import trio

from ._startup import (
    ListenStatus,
    StartupError,
    bind_problem,
    check_state_backend,
    log_file_problem,
    settings_problem,
    startup_step,
    state_problem,
    unknown_setting_warnings,
)
from .server import (
    ServerSettings,
    configure_logging,
    hypercorn_config,
    serve_forever,
    serve_workers,
)

_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)
_FORMATS = click.Choice(["json", "console"], case_sensitive=False)


def _load(env_file: Path | None, **overrides: Any) -> ServerSettings:
    """Settings from the environment and flags; a bad value or an unreadable env
    file stops start-up with a one-line reason (exit 2). An unknown ``SERVER_*``
    key gets a one-line warning on stderr, and start-up goes on."""
    with startup_step(settings_problem(env_file)):
        if env_file is not None and env_file.is_dir():
            # pydantic-settings would skip a directory silently.
            raise IsADirectoryError(
                errno.EISDIR, os.strerror(errno.EISDIR), str(env_file)
            )
        settings = ServerSettings.from_env(env_file=env_file, **overrides)
    for line in unknown_setting_warnings(env_file):
        click.echo(line, err=True)
    return settings


_env_file_option = click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Read SERVER_* settings from this file too (ignored if missing).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trio-resilience")
def main() -> None:
    """trio_resilience: a fault-injection test server for HTTP clients, on Trio.

    Every setting also comes from a SERVER_* environment variable or a .env file;
    flags win over both. An empty optional setting (SERVER_JOB_TIMEOUT=) is unset;
    an unknown SERVER_* key gets a warning on stderr naming the closest setting.
    """


@main.command()
@click.option("--host", help="Address to bind to.  [default: 127.0.0.1]")
@click.option("--port", type=int, help="Port to bind to; 0 picks one.  [default: 8000]")
@click.option("--max-concurrency", type=int, help="Requests handled at once.")
@click.option("--request-timeout", type=float, help="Seconds a request may take.")
@click.option(
    "--queue-timeout", type=float, help="Seconds a request may wait for a slot."
)
@click.option("--log-level", type=_LEVELS, help="Log level.")
@click.option("--log-format", type=_FORMATS, help="Log format.")
@click.option(
    "--workers", type=int, help="Worker processes (>1 needs --state-url).  [default: 1]"
)
@click.option("--state-url", help="Keep shared state in Redis: redis://host:port/db.")
@click.option("--reload", is_flag=True, help="Restart when the code changes.")
@_env_file_option
def serve(
    host: str | None,
    port: int | None,
    max_concurrency: int | None,
    request_timeout: float | None,
    queue_timeout: float | None,
    log_level: str | None,
    log_format: str | None,
    workers: int | None,
    state_url: str | None,
    reload: bool,
    env_file: Path,
) -> None:
    """Serve the test server until SIGINT or SIGTERM, then drain and exit 0."""
    settings = _load(
        env_file,
        host=host,
        port=port,
        max_concurrency=max_concurrency,
        request_timeout=request_timeout,
        queue_timeout=queue_timeout,
        log_level=log_level,
        log_format=log_format,
        workers=workers,
        state_url=state_url,
    )
    with startup_step(log_file_problem(settings.log_file)):
        configure_logging(
            level=settings.log_level, fmt=settings.log_format, file=settings.log_file
        )
    if settings.state_url is not None:
        with startup_step(state_problem(settings)):
            trio.run(check_state_backend, settings.state_url)
    if reload:
        if settings.workers > 1:
            raise StartupError("--reload serves one worker; drop --workers or --reload")
        _serve_with_reloader(settings)
        return
    if settings.workers > 1:
        with startup_step(bind_problem(settings)):
            code = serve_workers(settings)
        sys.exit(code)
    # serve_forever stays the main task, so a SIGINT that arrives before its signal
    # handler is installed still reaches Hypercorn, which stops gracefully.
    status = ListenStatus()
    with startup_step(bind_problem(settings), status=status):
        trio.run(partial(serve_forever, settings, task_status=status))
    # The server has stopped; what is left is the interpreter's teardown, whose
    # final garbage collection would walk every object the app made (about 0.2 s,
    # most of a SIGTERM exit). Frozen objects are skipped; the OS frees them.
    gc.freeze()


def _serve_with_reloader(settings: ServerSettings) -> None:
    """Hand over to Hypercorn's runner, which restarts the worker on code changes.

    The worker builds its app from the environment, so the effective settings are
    passed to it as SERVER_* variables. Hypercorn binds the sockets in this process
    before it starts a worker, so a bad address fails here, as without --reload;
    nothing else this process does binds a socket.
    """
    from hypercorn.run import run

    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            value = ""  # unset, even where the default is not (see from_env)
        if isinstance(value, list):
            value = ",".join(value)
        os.environ[f"SERVER_{name.upper()}"] = str(value)
    if settings.control_token is not None:  # the dump above masks it
        os.environ["SERVER_CONTROL_TOKEN"] = settings.control_token.get_secret_value()
    config = hypercorn_config(settings)
    config.application_path = "trio_resilience.server:create_app_from_env()"
    config.worker_class = "trio"
    config.use_reloader = True
    with startup_step(bind_problem(settings)):
        exit_code = run(config)
    sys.exit(exit_code)


@main.command("config-info")
@_env_file_option
def config_info(env_file: Path) -> None:
    """Print the effective configuration as JSON, and where state lives."""
    settings = _load(env_file)
    shown = settings.model_dump(mode="json")
    shown["state_backend"] = state_backend(settings)
    click.echo(json.dumps(shown, indent=2))


def state_backend(settings: ServerSettings) -> str:
    """``memory`` or ``redis (host:port/db)``: where the server keeps shared state."""
    if settings.state_url is None:
        return "memory"
    where = settings.state_url.split("@")[-1].split("://", 1)[-1]
    return f"redis ({where})"
