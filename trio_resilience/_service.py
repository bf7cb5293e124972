"""A nursery for tasks that serve a block and end with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


@asynccontextmanager
async def open_service_nursery() -> AsyncIterator[trio.Nursery]:
    """Open a nursery whose tasks serve the ``async with`` block.

    When the block exits, the service tasks are cancelled and awaited, so none
    outlives it. An exception raised by the block itself propagates as it is, not
    wrapped in the nursery's `ExceptionGroup`, so callers can keep writing
    ``except KeyError`` around a block that happens to own background tasks.
    """
    body_error: BaseException | None = None
    async with trio.open_nursery() as nursery:
        try:
            yield nursery
        except BaseException as exc:
            body_error = exc
        finally:
            nursery.cancel_scope.cancel()
    if body_error is not None:
        raise body_error
