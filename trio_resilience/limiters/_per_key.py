"""Independent limiters per key (per user, per host, ...), forgotten when idle."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Hashable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Generic, ParamSpec, TypeVar

import attrs
import trio
from trio_util import RepeatedEvent

from .._runbound import current_run
from .._service import ServiceLifetime, open_service_nursery
from .._validation import check_async_callable, check_number
from ._base import AsyncRateLimiter

K = TypeVar("K", bound=Hashable)
L = TypeVar("L", bound=AsyncRateLimiter)
P = ParamSpec("P")
T = TypeVar("T")


@attrs.define(eq=False)
class _Entry(Generic[L]):
    limiter: L
    users: int = 0  # tasks holding or waiting for this key's limiter


class PerKeyRateLimiter(ServiceLifetime, Generic[K, L]):
    """One limiter per key, made on first use by ``factory()`` and dropped when idle.

    A key is idle when no task holds or waits for its limiter; ``idle_timeout``
    seconds after it became idle it is dropped, so memory is bounded by the keys
    active in the last ``idle_timeout`` seconds. A dropped key starts afresh on its
    next use (a new token bucket starts full), so for token buckets choose an
    ``idle_timeout`` of at least ``capacity / rate``.

    The cleanup runs in a nursery that the limiter opens, so it must be used as an
    async context manager; nothing is left running once the block exits, and every
    key is forgotten then, so each block (in whichever `trio.run`) starts afresh.
    While open it serves only the run that opened it; using it from another run
    raises `RuntimeError`::

        async with PerKeyRateLimiter(
            lambda: TokenBucketRateLimiter(rate=5, capacity=10), idle_timeout=60
        ) as per_user:
            async with per_user.limit(user_id):
                await handle(request)
    """

    def __init__(
        self, factory: Callable[[], L], *, idle_timeout: float = 300.0
    ) -> None:
        if not callable(factory):
            raise TypeError("factory must be callable")
        self._factory = factory
        self._idle_timeout = check_number("idle_timeout", idle_timeout, above=0)
        self._entries: dict[K, _Entry[L]] = {}
        # Idle keys in the order they became idle, with that time.
        self._idle: dict[K, float] = {}
        self._became_idle = RepeatedEvent()
        # The run whose `async with` block is open; None when closed.
        self._open_in: trio.lowlevel.TrioToken | None = None

    def __repr__(self) -> str:
        return f"<PerKeyRateLimiter {len(self._entries)} keys, {len(self._idle)} idle>"

    @property
    def idle_timeout(self) -> float:
        """Seconds an unused key is kept."""
        return self._idle_timeout

    def __len__(self) -> int:
        """The number of keys that currently have a limiter."""
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # -- lifetime -------------------------------------------------------------------

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        async with open_service_nursery() as nursery:
            nursery.start_soon(self._reap)
            self._open_in = current_run()
            try:
                yield
            finally:
                self._open_in = None
                self._entries.clear()
                self._idle.clear()

    async def _reap(self) -> None:
        while True:
            now = trio.current_time()
            for key, since in list(self._idle.items()):
                if since + self._idle_timeout > now:
                    await trio.sleep_until(since + self._idle_timeout)
                    break
                del self._idle[key]
                del self._entries[key]
            else:
                await self._became_idle.wait()

    # -- using a key ----------------------------------------------------------------

    def _check_open(self) -> None:
        if self._open_in is None:
            raise RuntimeError(
                "PerKeyRateLimiter must be used inside "
                "'async with PerKeyRateLimiter(...)'"
            )
        self._check_run()

    def _check_run(self) -> None:
        # Its keys, idle times and cleanup task belong to the run that opened it.
        if self._open_in is not None and self._open_in is not current_run():
            raise RuntimeError("this PerKeyRateLimiter is open in another trio.run")

    def _check_out(self, key: K) -> _Entry[L]:
        self._check_open()
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry(self._factory())
        else:
            self._idle.pop(key, None)
        entry.users += 1
        return entry

    def _check_in(self, key: K, entry: _Entry[L]) -> None:
        entry.users -= 1
        if entry.users == 0 and self._entries.get(key) is entry:
            # The reaper waits for this event only while no key is idle; otherwise
            # it is asleep until an earlier expiry and will see this key then.
            if not self._idle:
                self._became_idle.set()
            self._idle[key] = trio.current_time()

    async def _acquire_entry(self, key: K) -> _Entry[L]:
        entry = self._check_out(key)
        try:
            await entry.limiter.acquire()
        except BaseException:
            self._check_in(key, entry)
            raise
        return entry

    async def _release_entry(self, key: K, entry: _Entry[L]) -> None:
        try:
            await entry.limiter.release()
        finally:
            self._check_in(key, entry)

    async def acquire(self, key: K) -> None:
        """Wait for ``key``'s limiter and acquire it; pair it with `release`."""
        await self._acquire_entry(key)

    async def release(self, key: K) -> None:
        """Release ``key``'s limiter, acquired earlier with `acquire`."""
        self._check_run()
        entry = self._entries.get(key)
        if entry is None or entry.users == 0:
            raise RuntimeError(f"release({key!r}) without a matching acquire")
        await self._release_entry(key, entry)

    def limit(self, key: K) -> AbstractAsyncContextManager[L]:
        """An async context manager holding ``key``'s limiter for the block."""
        return _KeyLimit(self, key)

    def decorator(
        self, key_func: Callable[..., K]
    ) -> Callable[
        [Callable[P, Coroutine[Any, Any, T]]], Callable[P, Coroutine[Any, Any, T]]
    ]:
        """Limit each call of an async function by ``key_func(*args, **kwargs)``."""
        if not callable(key_func):
            raise TypeError("key_func must be callable")

        def decorate(
            fn: Callable[P, Coroutine[Any, Any, T]],
        ) -> Callable[P, Coroutine[Any, Any, T]]:
            check_async_callable("PerKeyRateLimiter.decorator()", fn)

            @functools.wraps(fn)
            async def limited(*args: P.args, **kwargs: P.kwargs) -> T:
                async with self.limit(key_func(*args, **kwargs)):
                    return await fn(*args, **kwargs)

            return limited

        return decorate


class _KeyLimit(Generic[K, L]):
    __slots__ = ("_entry", "_key", "_owner")

    def __init__(self, owner: PerKeyRateLimiter[K, L], key: K) -> None:
        self._owner = owner
        self._key = key
        self._entry: _Entry[L] | None = None

    async def __aenter__(self) -> L:
        self._entry = await self._owner._acquire_entry(self._key)
        return self._entry.limiter

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        entry, self._entry = self._entry, None
        assert entry is not None
        await self._owner._release_entry(self._key, entry)
