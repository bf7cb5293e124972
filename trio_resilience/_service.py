"""A nursery for tasks that serve a block and end with it."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Self

import trio

from ._exceptions import leaf_exceptions


@asynccontextmanager
async def open_service_nursery(
    *, drain_for: float = 0.0
) -> AsyncIterator[trio.Nursery]:
    """Open a nursery whose tasks serve the ``async with`` block.

    When the block exits, the service tasks are cancelled and awaited, so none
    outlives it. With ``drain_for`` > 0 they are given that many seconds to end
    by themselves first, for services that the block tells to stop on its way out
    (a server: tell it to stop, let it drain, then cancel). What propagates, by who
    fails:

    * only the block: its exception, as it is (not wrapped in the nursery's
      `ExceptionGroup`), so callers can keep writing ``except KeyError`` around a
      block that happens to own background tasks;
    * only a service task: the block is cancelled and the nursery's `ExceptionGroup`
      holding the task's exception propagates, as from `trio.open_nursery`;
    * both: the block's exception, as itself (a group loses only the ``Cancelled``
      the failed task caused), with the background failure attached twice: the
      nursery's group becomes its ``__context__`` (its own earlier context moves
      one link down, onto the group, so the printed chain loses nothing), and one
      note per failed task names that task's exception. If the block was merely
      cancelled, the task's failure propagates instead (as trio lets an error
      win over a cancellation); and a task's `BaseException` that is not an
      `Exception` (`KeyboardInterrupt`, `SystemExit`) is never reduced to an
      attachment: one `BaseExceptionGroup` then holds the block's exception and
      the tasks'.

    A cancellation from outside propagates as usual; one that only the nursery's
    own scope caused (a task raising a stray ``Cancelled``) ends there, as in trio.
    """
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            try:
                yield nursery
            except BaseException as exc:  # held until the service tasks are done
                body_error = exc
            finally:
                if drain_for > 0:
                    nursery.cancel_scope.deadline = trio.current_time() + drain_for
                else:
                    nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if body_error is None:
            raise
        raise _combine(body_error, group)  # noqa: B904 (its chain is set inside)
    if body_error is not None:
        if (
            _cancelled_only(body_error)
            and trio.current_effective_deadline() > -math.inf
        ):
            # Nothing around us is cancelled, so the block's Cancelled came from the
            # nursery's own scope (a service task ended with a stray Cancelled); it
            # stops here, as `trio.open_nursery` absorbs its own scope's Cancelled.
            return
        raise body_error


def _cancelled_only(exc: BaseException) -> bool:
    return all(isinstance(leaf, trio.Cancelled) for leaf in leaf_exceptions(exc))


def _combine(
    body_error: BaseException, background: BaseExceptionGroup[BaseException]
) -> BaseException:
    """The one exception to raise when the block and a service task both failed."""
    # A failed task cancelled the nursery, so the block's Cancelled may be ours:
    # only the block's real errors count. (An outer cancellation is re-delivered
    # at the caller's next checkpoint, as when trio's own scopes absorb Cancelled.)
    if _cancelled_only(body_error):
        return background
    primary: BaseException = body_error
    if isinstance(body_error, BaseExceptionGroup):
        _, rest = body_error.split(trio.Cancelled)
        assert rest is not None
        primary = rest
    if not isinstance(background, ExceptionGroup):
        combined = BaseExceptionGroup(
            "the block and a background task both failed",
            [primary, *background.exceptions],
        )
        combined.__suppress_context__ = True  # it holds the background group's all
        return combined
    if background.__context__ is None:
        background.__context__ = primary.__context__
    primary.__context__ = background
    for leaf in leaf_exceptions(background):
        primary.add_note(f"a background task failed too: {_safe_repr(leaf)}")
    return primary


def _safe_repr(exc: BaseException) -> str:
    try:
        return repr(exc)
    except Exception:  # a broken __repr__ must not replace the real errors
        return f"<{type(exc).__name__}>"


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
