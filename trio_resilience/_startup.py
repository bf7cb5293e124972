"""Start-up failures of the command line: one line naming the cause, exit code 2.

Each start-up step (reading the settings, opening the log file, binding the
address) runs inside `startup_step` with an explainer that knows that step's
failures; anything it does not know keeps its traceback.
"""

from __future__ import annotations

import difflib
import errno
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import click
import trio
from pydantic import ValidationError

from ._backend import BackendUnavailableError
from ._exceptions import leaf_exceptions
from .server import ServerSettings, hypercorn_config


class StartupError(click.ClickException):
    """A start-up failure the user can fix: ``Error: <reason>`` on stderr, exit 2."""

    exit_code = 2


Explain = Callable[[BaseException], str | None]


@attrs.define(eq=False)
class ListenStatus(trio.TaskStatus[list[str]]):
    """The serve task's status: Hypercorn reports ``started`` once it listens."""

    listening: bool = False

    def started(self, value: list[str] | None = None) -> None:
        self.listening = True


@contextmanager
def startup_step(
    explain: Explain, *, status: ListenStatus | None = None
) -> Iterator[None]:
    """Turn a known failure of this start-up step into one line and exit code 2.

    The failure may arrive wrapped in exception groups (Trio's and Hypercorn's
    nurseries); it is translated only if ``explain`` knows every exception in it, so
    an unexpected error, a KeyboardInterrupt or a Cancelled keeps its traceback.
    Once ``status`` says the server listens, nothing is translated any more: a
    failure while serving is not a start-up failure.
    """
    try:
        yield
    except BaseException as error:
        if status is not None and status.listening:
            raise
        leaves = leaf_exceptions(error)
        reasons = [reason for leaf in leaves if (reason := explain(leaf)) is not None]
        if len(reasons) < len(leaves):
            raise
        raise StartupError(reasons[0]) from error


def _setting_name(loc: tuple[int | str, ...]) -> str:
    field = ".".join(str(part) for part in loc) or "settings"
    return f"{field} (SERVER_{field.upper()})" if loc else field


def settings_problem(env_file: Path | None) -> Explain:
    def explain(error: BaseException) -> str | None:
        if isinstance(error, ValidationError):
            problems = "; ".join(
                f"{_setting_name(e['loc'])}: {e['msg']} (got {e['input']!r})"
                for e in error.errors(include_url=False)
            )
            return f"invalid configuration: {problems}"
        if isinstance(error, UnicodeDecodeError):
            byte = error.object[error.start]
            return (
                f"cannot read env file '{env_file}': not UTF-8 "
                f"(byte 0x{byte:02x} at offset {error.start}: {error.reason})"
            )
        if isinstance(error, OSError) and error.filename is not None:
            return f"cannot read env file '{env_file}': {error.strerror}"
        return None

    return explain


def unknown_setting_warnings(env_file: Path | None) -> list[str]:
    """One ``Warning: ...`` line per ``SERVER_*`` key that no setting reads.

    Each line names the key, where it was found and, if one is close, the setting
    it was probably meant for (a typo such as ``SERVER_MAX_CONCURENCY``). Start-up
    goes on: a ``SERVER_*`` variable may belong to another program sharing the
    environment or the ``.env`` file, so refusing to start would be wrong there.
    """
    known = list(ServerSettings.model_fields)
    lines = []
    for key, where in ServerSettings.unknown_env_keys(env_file=env_file):
        place = (
            "the environment" if where == "environment" else f"env file '{env_file}'"
        )
        line = f"Warning: unknown setting {key} in {place} ignored"
        close = difflib.get_close_matches(key[len("SERVER_") :].lower(), known, n=1)
        if close:
            line += f"; did you mean SERVER_{close[0].upper()}?"
        lines.append(line)
    return lines


def log_file_problem(log_file: Path | None) -> Explain:
    def explain(error: BaseException) -> str | None:
        if isinstance(error, OSError) and error.filename is not None:
            return (
                f"cannot open log file '{log_file}' (SERVER_LOG_FILE): {error.strerror}"
            )
        return None

    return explain


# What binding a listening socket can fail with; a file error carries a filename.
_BIND_ERRNOS = {
    errno.EADDRINUSE,
    errno.EADDRNOTAVAIL,
    errno.EACCES,
    errno.EPERM,
    errno.EAFNOSUPPORT,
}


def bind_problem(settings: ServerSettings) -> Explain:
    address = hypercorn_config(settings).bind[0]

    def explain(error: BaseException) -> str | None:
        if isinstance(error, socket.gaierror):
            return (
                f"cannot resolve host {settings.host!r} (SERVER_HOST): {error.strerror}"
            )
        if (
            isinstance(error, OSError)
            and error.filename is None
            and error.errno in _BIND_ERRNOS
        ):
            return (
                f"cannot listen on {address} (SERVER_HOST, SERVER_PORT): "
                f"{error.strerror}"
            )
        return None

    return explain


async def check_state_backend(url: str) -> None:
    """Raise `BackendUnavailableError` unless the state backend at ``url`` answers."""
    from .redis import open_redis

    async with open_redis(url):
        pass


def state_problem(settings: ServerSettings) -> Explain:
    def explain(error: BaseException) -> str | None:
        if isinstance(error, BackendUnavailableError):
            return f"cannot use the state backend (SERVER_STATE_URL): {error}"
        if isinstance(error, ImportError) and error.name == "coredis":
            return (
                "SERVER_STATE_URL needs the Redis client: "
                "pip install 'trio-resilience[redis]'"
            )
        return None

    return explain
