"""A background task of the serving app that fails stops the server with the
error, instead of leaving Hypercorn serving without it (it would log a lifespan
error and answer 500s), so a supervisor replaces the process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio

import trio_resilience.server._app as app_module
from trio_resilience._exceptions import leaf_exceptions
from trio_resilience.server import ServerSettings, serve_forever


async def test_a_failed_job_queue_stops_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = trio.Event()
    original = app_module.open_job_queue

    @asynccontextmanager
    async def failing_queue(state: Any) -> AsyncIterator[Any]:
        """The real queue, with a task of its own that fails on demand."""

        async def breaks() -> None:
            await broken.wait()
            raise RuntimeError("the queue broke")

        async with original(state) as queue, trio.open_nursery() as nursery:
            nursery.start_soon(breaks)
            yield queue

    monkeypatch.setattr(app_module, "open_job_queue", failing_queue)
    settings = ServerSettings(port=0, shutdown_grace_period=1)
    stopped: list[BaseException] = []
    with trio.fail_after(20):
        try:
            async with trio.open_nursery() as nursery:
                urls = await nursery.start(
                    lambda task_status: serve_forever(
                        settings,
                        shutdown_trigger=trio.sleep_forever,
                        task_status=task_status,
                    )
                )
                async with httpx.AsyncClient(base_url=urls[0]) as client:
                    assert (await client.get("/health")).status_code == 200
                broken.set()
        except BaseExceptionGroup as group:
            stopped = leaf_exceptions(group)
    assert [str(error) for error in stopped] == [
        "the server stopped: a background task failed: RuntimeError: the queue broke"
    ]
