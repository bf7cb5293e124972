"""pytest plugin (registered through the ``pytest11`` entry point).

Fixtures, for tests run by pytest-trio:

``resilience_server_settings``
    The `ServerSettings` the server starts with; override it in a ``conftest.py`` or
    a test module to change them.
``resilience_server``
    The base URL of a real test server serving for the duration of one test; at
    teardown it shuts down as on SIGTERM (requests still in flight get the grace
    period, idle connections are closed at once).
``resilience_faults``
    A `FaultClient` for that server: add fault rules, read the request journal.

The server logs at the settings' ``log_level`` (``ServerSettings(log_level="ERROR")``
keeps its INFO request lines out of a test's captured output), without touching the
test session's logging configuration; see `serve_in_background`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..server import ServerSettings
    from ._faults import FaultClient


@pytest.fixture
def resilience_server_settings() -> ServerSettings:
    """Settings for `resilience_server`: the defaults, without docs."""
    from ..server import ServerSettings

    return ServerSettings(enable_docs=False)


@pytest.fixture
async def resilience_server(
    resilience_server_settings: ServerSettings,
) -> AsyncIterator[str]:
    """The base URL (``http://127.0.0.1:PORT``) of a test server for one test."""
    from . import serve_in_background

    async with serve_in_background(resilience_server_settings) as base_url:
        yield base_url


@pytest.fixture
def resilience_faults(
    resilience_server: str, resilience_server_settings: ServerSettings
) -> FaultClient:
    """A `FaultClient` for the `resilience_server` of the same test (with its
    control token, if the settings set one)."""
    from ._faults import FaultClient

    token = resilience_server_settings.control_token
    return FaultClient(
        resilience_server, token=None if token is None else token.get_secret_value()
    )
