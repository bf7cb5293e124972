"""An embedded server logs at its settings' level, without touching the program's
logging configuration (serve_in_background and the resilience_server fixture)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
import structlog
import trio
import trio.testing
from structlog.testing import capture_logs

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background

SERVER_LOGGER = "trio_resilience.server"


def server_lines(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(level, event) of every line the server logged."""
    return [
        (entry["log_level"], entry["event"])
        for entry in entries
        if entry.get("logger") == SERVER_LOGGER
    ]


async def get_msg(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        assert (await client.get("/msg")).status_code == 200


@pytest.mark.parametrize("level", ["ERROR", "WARNING"])
async def test_quiet_levels_drop_the_info_lines(level: str) -> None:
    """With log_level ERROR or WARNING the server logs no INFO line at all."""
    with capture_logs() as entries:
        async with serve_in_background(ServerSettings(log_level=level)) as base_url:
            await get_msg(base_url)
    # The block has exited: every task of the server has finished logging.
    assert server_lines(entries) == []


@pytest.mark.parametrize("level", ["DEBUG", "INFO"])
async def test_info_and_debug_keep_the_request_lines(level: str) -> None:
    """With log_level DEBUG or INFO the start, request and stop lines are logged."""
    with capture_logs() as entries:
        async with serve_in_background(ServerSettings(log_level=level)) as base_url:
            await get_msg(base_url)
    assert server_lines(entries) == [
        ("info", "server starting"),
        ("info", "request"),
        ("info", "server stopped"),
    ]
    (request,) = [entry for entry in entries if entry["event"] == "request"]
    assert (request["path"], request["status"]) == ("/msg", 200)


async def test_two_servers_side_by_side_keep_their_own_levels() -> None:
    """The level belongs to one server: a quiet one and a talkative one in one run."""
    with capture_logs() as entries:
        async with (
            serve_in_background(ServerSettings(log_level="ERROR")) as quiet,
            serve_in_background(ServerSettings(log_level="INFO")) as talkative,
        ):
            await get_msg(quiet)
            await get_msg(talkative)
            await get_msg(quiet)
    requests = [entry for entry in entries if entry["event"] == "request"]
    assert len(requests) == 1
    assert [entry["event"] for entry in entries].count("server starting") == 1


@pytest.mark.parametrize(("level", "logged"), [("ERROR", False), ("INFO", True)])
async def test_hypercorns_lines_follow_the_level_too(
    caplog: pytest.LogCaptureFixture, level: str, logged: bool
) -> None:
    """Hypercorn's "Running on" INFO record is dropped with log_level ERROR only."""
    caplog.set_level(logging.INFO, logger="hypercorn.error")
    async with serve_in_background(ServerSettings(log_level=level)) as base_url:
        running = [r for r in caplog.records if r.getMessage().startswith("Running on")]
        assert [r.getMessage() for r in running] == (
            [f"Running on {base_url} (CTRL + C to quit)"] if logged else []
        )


async def test_the_callers_logging_is_left_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A quiet server changes neither structlog's nor logging's configuration, and
    the caller's own INFO lines still come through while it runs."""
    caplog.set_level(logging.INFO, logger="hypercorn.error")
    structlog_before = {
        key: list(value) if isinstance(value, list) else value
        for key, value in structlog.get_config().items()
    }
    root = logging.getLogger()
    root_before = (root.level, list(root.handlers))
    hypercorn_level = logging.getLogger("hypercorn.error").level
    with capture_logs() as entries:
        async with serve_in_background(ServerSettings(log_level="ERROR")) as base_url:
            await get_msg(base_url)
            structlog.get_logger().info("caller line", logger="caller")
            logging.getLogger("hypercorn.error").info("caller record")
    assert [entry["event"] for entry in entries] == ["caller line"]
    assert [r.getMessage() for r in caplog.records] == ["caller record"]
    assert structlog.get_config() == structlog_before
    assert (root.level, list(root.handlers)) == root_before
    assert logging.getLogger("hypercorn.error").level == hypercorn_level


class TestTheFixtureFollowsItsSettings:
    """resilience_server with resilience_server_settings(log_level="ERROR")."""

    @pytest.fixture
    def resilience_server_settings(self) -> ServerSettings:
        return ServerSettings(enable_docs=False, log_level="ERROR")

    async def test_no_request_lines(self, resilience_server: str) -> None:
        """The fixture's server logs no INFO request line with log_level ERROR."""
        with capture_logs() as entries:
            await get_msg(resilience_server)
            # Every task, the server's included, has run as far as it can: the
            # request's line has been logged or dropped by now.
            await trio.testing.wait_all_tasks_blocked()
        assert server_lines(entries) == []


class TestTheFixtureAtInfo:
    """resilience_server with the default settings: INFO (the control case)."""

    async def test_request_lines(self, resilience_server: str) -> None:
        """The fixture's server logs its request line at the default INFO level."""
        with capture_logs() as entries:
            await get_msg(resilience_server)
            await trio.testing.wait_all_tasks_blocked()
        assert server_lines(entries) == [("info", "request")]
