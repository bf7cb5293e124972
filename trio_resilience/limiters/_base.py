"""The protocol every limiter satisfies, and the mixin that derives the usage forms."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, Protocol, Self, TypeVar, runtime_checkable

from .._validation import check_async_callable

P = ParamSpec("P")
T = TypeVar("T")


@runtime_checkable
class AsyncRateLimiter(Protocol):
    """What every limiter offers: ``async with``, a decorator, and acquire/release.

    ``acquire`` waits for permission; ``release`` hands back whatever ``acquire``
    took (a no-op for limiters whose permits are not returned, like a token bucket)
    and never blocks, so it is safe in a ``finally`` block of a cancelled scope.
    """

    async def acquire(self) -> None: ...

    async def release(self) -> None: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...

    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...


class LimiterMixin:
    """Derives ``async with`` and the decorator from ``acquire`` and ``_release``.

    ``_release`` is the synchronous part of giving a permit back, so that leaving an
    ``async with`` block never reaches a checkpoint and cannot be interrupted by a
    cancellation halfway.
    """

    __slots__ = ()

    async def acquire(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    async def release(self) -> None:
        """Give back what `acquire` took; never blocks."""
        self._release()

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        """Run every call of the async function ``fn`` under this limiter."""
        check_async_callable(type(self).__name__, fn)

        @functools.wraps(fn)
        async def limited(*args: P.args, **kwargs: P.kwargs) -> T:
            await self.acquire()
            try:
                return await fn(*args, **kwargs)
            finally:
                self._release()

        return limited
