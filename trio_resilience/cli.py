"""Command line: ``trio-resilience serve`` and ``trio-resilience config-info``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click
import trio
from pydantic import ValidationError

from .server import ServerSettings, configure_logging

_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)
_FORMATS = click.Choice(["json", "console"], case_sensitive=False)


def _setting_name(loc: tuple[int | str, ...]) -> str:
    field = ".".join(str(part) for part in loc) or "settings"
    return f"{field} (SERVER_{field.upper()})" if loc else field


def _load(env_file: Path | None, **overrides: Any) -> ServerSettings:
    """Settings from the environment and flags, or exit 2 with a one-line reason."""
    try:
        return ServerSettings.from_env(env_file=env_file, **overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{_setting_name(e['loc'])}: {e['msg']} (got {e['input']!r})"
            for e in error.errors(include_url=False)
        )
        click.echo(f"Error: invalid configuration: {problems}", err=True)
        sys.exit(2)


_env_file_option = click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Read SERVER_* settings from this file too (ignored if missing).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="trio-resilience")
def main() -> None:
    """trio_resilience: a fault-injection test server for HTTP clients, on Trio.

    Every setting also comes from a SERVER_* environment variable or a .env file;
    flags win over both.
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
    )
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, file=settings.log_file
    )
    if reload:
        _serve_with_reloader(settings)
        return
    from .server import serve_forever

    trio.run(serve_forever, settings)


def _serve_with_reloader(settings: ServerSettings) -> None:
    """Hand over to Hypercorn's runner, which restarts the worker on code changes.

    The worker builds its app from the environment, so the effective settings are
    passed to it as SERVER_* variables.
    """
    from hypercorn.run import run

    from .server import hypercorn_config

    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        os.environ[f"SERVER_{name.upper()}"] = str(value)
    config = hypercorn_config(settings)
    config.application_path = "trio_resilience.server:create_app_from_env()"
    config.worker_class = "trio"
    config.use_reloader = True
    sys.exit(run(config))


@main.command("config-info")
@_env_file_option
def config_info(env_file: Path) -> None:
    """Print the effective configuration as JSON."""
    settings = _load(env_file)
    click.echo(json.dumps(settings.model_dump(mode="json"), indent=2))
