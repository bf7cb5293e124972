"""The log threshold serve_in_background binds to a server's task tree, and the
server's loggers that obey it."""

from __future__ import annotations

import logging

import pytest
import trio
from structlog.testing import capture_logs

from trio_resilience._log_threshold import (
    ThresholdFilter,
    add_threshold_filter,
    bind_log_threshold,
    current_log_threshold,
    log_level_number,
)
from trio_resilience.server._logging import get_logger


def log_every_level() -> None:
    log = get_logger()
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("x")
    log.critical("c")


def test_level_names_and_numbers() -> None:
    """Level names (any case) and numbers are accepted."""
    assert log_level_number("error") == logging.ERROR
    assert log_level_number("DEBUG") == logging.DEBUG
    assert log_level_number(25) == 25


def test_unknown_level_name() -> None:
    """An unknown level name is a ValueError naming it."""
    with pytest.raises(ValueError, match=r"^unknown log level 'LOUD'$"):
        log_level_number("LOUD")


@pytest.mark.parametrize("level", [1.5, True, None])
def test_level_of_the_wrong_type(level: object) -> None:
    """A level that is neither a str nor an int is a TypeError."""
    with pytest.raises(
        TypeError,
        match=rf"^log level must be a str or an int, not {type(level).__name__}$",
    ):
        log_level_number(level)  # type: ignore[arg-type]


def test_binding_is_undone_when_the_block_exits() -> None:
    """The threshold holds inside the block only; nested blocks restore theirs."""
    assert current_log_threshold() == logging.NOTSET
    with bind_log_threshold("WARNING"):
        assert current_log_threshold() == logging.WARNING
        with bind_log_threshold("ERROR"):
            assert current_log_threshold() == logging.ERROR
        assert current_log_threshold() == logging.WARNING
    assert current_log_threshold() == logging.NOTSET


def test_without_a_threshold_every_line_is_logged() -> None:
    """Outside a bound task tree the server's logger drops nothing, DEBUG included."""
    with capture_logs() as entries:
        log_every_level()
    assert [e["event"] for e in entries] == ["d", "i", "w", "e", "x", "c"]


@pytest.mark.parametrize(
    ("level", "events"),
    [
        ("DEBUG", ["d", "i", "w", "e", "x", "c"]),
        ("INFO", ["i", "w", "e", "x", "c"]),
        ("WARNING", ["w", "e", "x", "c"]),
        ("ERROR", ["e", "x", "c"]),
    ],
)
def test_lines_below_the_threshold_are_dropped(level: str, events: list[str]) -> None:
    """The server's logger emits exactly the lines at or above the threshold."""
    with capture_logs() as entries, bind_log_threshold(level):
        log_every_level()
    assert [e["event"] for e in entries] == events
    assert {e["logger"] for e in entries} == {"trio_resilience.server"}


def test_bound_loggers_keep_the_threshold_and_add_values() -> None:
    """bind() adds values to every line and still obeys the threshold."""
    log = get_logger().bind(request_id="r1")
    with capture_logs() as entries, bind_log_threshold("WARNING"):
        log.info("dropped")
        log.warning("kept", extra=1)
    assert entries == [
        {
            "event": "kept",
            "log_level": "warning",
            "logger": "trio_resilience.server",
            "request_id": "r1",
            "extra": 1,
        }
    ]


async def test_tasks_started_inside_inherit_and_the_rest_do_not(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Tasks started from a bound task inherit its threshold; the caller's task and
    tasks started from it do not, even while the bound task runs."""
    seen: dict[str, int] = {}

    async def record(name: str) -> None:
        await trio.sleep(1)
        seen[name] = current_log_threshold()

    async def server(task_status: trio.TaskStatus[None]) -> None:
        with bind_log_threshold("ERROR"):
            async with trio.open_nursery() as inner:
                inner.start_soon(record, "child")
                task_status.started()
                await record("server")

    async with trio.open_nursery() as nursery:
        await nursery.start(server)
        nursery.start_soon(record, "sibling")
        await record("caller")
    assert seen == {
        "child": logging.ERROR,
        "server": logging.ERROR,
        "sibling": logging.NOTSET,
        "caller": logging.NOTSET,
    }


def test_threshold_filter_on_a_standard_library_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ThresholdFilter drops records below the bound threshold, none outside it."""
    logger = logging.getLogger("tests.threshold_filter")
    add_threshold_filter(logger)
    caplog.set_level(logging.DEBUG, logger=logger.name)
    with bind_log_threshold("WARNING"):
        logger.info("dropped")
        logger.warning("kept")
    logger.debug("outside")
    assert [r.getMessage() for r in caplog.records] == ["kept", "outside"]


def test_threshold_filter_is_added_once() -> None:
    """A second add_threshold_filter on one logger adds nothing."""
    logger = logging.getLogger("tests.threshold_filter_once")
    add_threshold_filter(logger)
    add_threshold_filter(logger)
    assert [type(f) for f in logger.filters] == [ThresholdFilter]
