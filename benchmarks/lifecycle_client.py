"""Client errors and log levels: the figures for issue 9, items 13 and 14.

Prints, for the ``trio_resilience`` the current import resolves to (virtual time,
``httpx.MockTransport``, no network):

* item 13: what ``client.get("http://[::1")`` raises (type, message, cause, request
  id, attempts), and what leaves the client when the transport raises each public
  httpx exception (counted by the class that came out);
* item 14: for each ``LoggingConfig(level=...)``, the records a 3-attempt call logs,
  by level: two 503s then a 200, and three 503s. The logger itself is set to DEBUG
  here, so the config alone decides.

Run ``python benchmarks/lifecycle_client.py``; for the code before issue 9,
``PYTHONPATH=/tmp/before python benchmarks/lifecycle_client.py``. No assertions.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from typing import Any

import httpx
import trio
import trio.testing

from trio_resilience import ClientConfig, LoggingConfig, ResilientClient, RetryConfig
from trio_resilience.client.errors import APIError

RETRY = RetryConfig(max_attempts=3, min_wait_seconds=0.5, jitter=False)
LOGGER = "lifecycle_client"
QUIET = LoggingConfig(logger_name="lifecycle_client.quiet")  # item 13 logs nowhere


def qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


async def invalid_url() -> str:
    async with ResilientClient(ClientConfig(retry=RETRY, logging=QUIET)) as client:
        try:
            await client.get("http://[::1", request_id="rid")
        except Exception as exc:
            cause = exc.__cause__
            return (
                f"{qualname(type(exc))}: {exc}\n"
                f"    cause {None if cause is None else qualname(type(cause))}, "
                f"request_id {getattr(exc, 'request_id', None)!r}, "
                f"attempts {getattr(exc, 'attempts', None)!r}"
            )
    return "nothing raised"


def make(cls: type[Exception]) -> Exception:
    request = httpx.Request("GET", "http://service.test/")
    if cls is httpx.HTTPStatusError:
        response = httpx.Response(503, request=request)
        return cls("503", request=request, response=response)
    if issubclass(cls, httpx.StreamError) and cls is not httpx.StreamError:
        return cls()  # type: ignore[call-arg]
    return cls("boom")


async def what_leaves(cls: type[Exception]) -> str:
    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.lowlevel.checkpoint()
        raise make(cls)

    config = ClientConfig(base_url="http://service.test", retry=RETRY, logging=QUIET)
    async with ResilientClient(config, transport=httpx.MockTransport(handler)) as c:
        try:
            await c.get("/")
        except Exception as exc:
            return qualname(type(exc))
    return "nothing raised"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.levels: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.levels.append(record.levelname)


async def records_at(level: str, statuses: list[int]) -> list[str]:

    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.lowlevel.checkpoint()
        return httpx.Response(statuses.pop(0))

    handler_ = Records()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler_)
    try:
        config = ClientConfig(
            base_url="http://service.test",
            retry=RETRY,
            logging=LoggingConfig(level=level, logger_name=LOGGER),
        )
        async with ResilientClient(config, transport=httpx.MockTransport(handler)) as c:
            with contextlib.suppress(APIError):  # a final 503: its record counts
                await c.get("/")
    finally:
        logger.removeHandler(handler_)
    return handler_.levels


def run(main: Any, *args: Any) -> Any:
    return trio.run(main, *args, clock=trio.testing.MockClock(autojump_threshold=0))


def main() -> None:
    logging.getLogger(LOGGER).setLevel(logging.DEBUG)
    logging.getLogger(LOGGER).propagate = False
    logging.getLogger(QUIET.logger_name).addHandler(logging.NullHandler())
    print('item 13: client.get("http://[::1") raises')
    print(f"    {run(invalid_url)}")
    classes = sorted(
        (o for n in dir(httpx) if not n.startswith("_")
         if isinstance(o := getattr(httpx, n), type) and issubclass(o, Exception)),
        key=lambda cls: cls.__name__,
    )  # fmt: skip
    leaving = Counter(run(what_leaves, cls) for cls in classes)
    print(f"item 13: a transport raising each of httpx's {len(classes)} exceptions:")
    for name, count in sorted(leaving.items()):
        print(f"    {count:2d} x {name}")
    for statuses in ([503, 503, 200], [503, 503, 503]):
        print(f"item 14: records of one call answered {statuses}, by config level")
        for level in ("DEBUG", "INFO", "WARNING", "ERROR"):
            levels = run(records_at, level, list(statuses))
            by_level = ", ".join(f"{n} {lv}" for lv, n in Counter(levels).items())
            print(f"    level={level!r:10} {len(levels)} records: {by_level or '-'}")


if __name__ == "__main__":
    main()
