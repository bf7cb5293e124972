"""A nursery for tasks that serve a block and end with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Self

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


class ServiceLifetime:
    """``async with`` for objects whose running part is an async context manager.

    Subclasses implement ``_run()`` (typically an ``@asynccontextmanager`` around
    `open_service_nursery`); entering the object twice at once is an error.
    """

    _runner: AbstractAsyncContextManager[None] | None = None

    def _run(self) -> AbstractAsyncContextManager[None]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        if self._runner is not None:
            raise RuntimeError(f"this {type(self).__name__} is already open")
        self._runner = self._run()
        await self._runner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        runner, self._runner = self._runner, None
        assert runner is not None
        return await runner.__aexit__(exc_type, exc, tb)
