"""One Redis client for one `trio.run`: coredis on Trio, with a guarded pool.

coredis (anyio-based) runs natively under Trio. Its connection pool has a known
weakness: a command cancelled *while it waits for a free pool connection* can leave
its waiter behind, and a pool whose queue keeps cancelled waiters may stop handing
out connections. `RedisConnection` never lets a command wait inside the pool: a
`trio.CapacityLimiter` with two fewer tokens than the pool has connections admits
commands, so a command is cancelled while it waits on a Trio primitive (which
forgets a cancelled waiter at once), and the pool always has a connection free for
the commands it admitted. ``tests/integration/test_redis.py`` cancels 100 waiting
commands and then runs one more.

Every failure to reach Redis (refused, reset, timed out) raises
`RedisUnavailableError`, so callers have one exception to map (the server answers
503 with its message).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import coredis
import coredis.exceptions
import trio
from coredis.retry import NoRetryPolicy

from .._backend import BackendUnavailableError
from .._exceptions import leaf_exceptions

T = TypeVar("T")

DEFAULT_MAX_CONNECTIONS = 32
_SPARE_CONNECTIONS = 2
_UNREACHABLE = (
    coredis.exceptions.ConnectionError,
    coredis.exceptions.BusyLoadingError,
    ConnectionError,
    TimeoutError,
    OSError,
)


class RedisUnavailableError(BackendUnavailableError):
    """Redis could not be reached, or stopped answering."""


class RedisConnection:
    """A coredis client and its pool, open for the lifetime of an ``async with``.

    ``url`` is ``redis://host:port/db`` (``rediss://`` for TLS, a password as
    ``redis://:secret@host``). Commands go through `run`, which admits at most
    ``max_connections - 2`` at once, waiting in FIFO order, and maps connection
    failures to `RedisUnavailableError`; Lua scripts through `script`.
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        connect_timeout: float = 2.0,
    ) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"not a Redis URL (redis://host:port/db expected): {url!r}"
            )
        if max_connections < _SPARE_CONNECTIONS + 1:
            raise ValueError(
                f"max_connections must be at least {_SPARE_CONNECTIONS + 1}"
            )
        self.url = url
        self._client: coredis.Redis[bytes] = coredis.Redis.from_url(
            url,
            max_connections=max_connections,
            connect_timeout=connect_timeout,
            retry_policy=NoRetryPolicy(),
        )
        self._admission = trio.CapacityLimiter(max_connections - _SPARE_CONNECTIONS)
        self._open = False
        self._closed = False

    async def __aenter__(self) -> Self:
        if self._open or self._closed:
            raise RuntimeError("a RedisConnection can be opened only once")
        try:
            await self._client.__aenter__()
        except _UNREACHABLE as error:
            raise RedisUnavailableError(_describe(self.url, error)) from error
        self._open = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._open, self._closed = False, True
        try:
            await self._client.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The pool's task group wraps the block's own exception: let it
            # propagate by itself, not inside a group the caller never made.
            if exc is None or any(leaf is not exc for leaf in leaf_exceptions(group)):
                raise

    @property
    def client(self) -> coredis.Redis[bytes]:
        """The coredis client; call it through `run` to keep the pool guarded."""
        return self._client

    async def run(self, command: Callable[[coredis.Redis[bytes]], Awaitable[T]]) -> T:
        """``await command(client)`` under the admission limit; connection failures
        raise `RedisUnavailableError`."""
        if not self._open:
            raise RuntimeError("the RedisConnection is not open (use async with)")
        async with self._admission:
            try:
                return await command(self._client)
            except _UNREACHABLE as error:
                raise RedisUnavailableError(_describe(self.url, error)) from error

    async def ping(self) -> None:
        """Raise `RedisUnavailableError` unless Redis answers."""
        await self.run(lambda client: client.ping())

    def script(self, source: str) -> Script:
        """A Lua script run with EVALSHA (loaded on first use, again after a
        restart of Redis)."""
        return Script(self, source)


class Script:
    """A registered Lua script: ``await script(keys, args)``, one round trip."""

    def __init__(self, connection: RedisConnection, source: str) -> None:
        self._connection = connection
        self._script = connection.client.register_script(source)

    async def __call__(
        self, keys: Sequence[str] = (), args: Sequence[str | int | float | bytes] = ()
    ) -> Any:
        async def call(client: coredis.Redis[bytes]) -> Any:
            return await self._script(keys=list(keys), args=list(args))

        return await self._connection.run(call)


def _describe(url: str, error: BaseException) -> str:
    where = url.split("@")[-1]  # never the password
    if "://" in where:
        where = where.split("://", 1)[1]
    reason = str(error) or type(error).__name__
    return f"Redis at {where} is unavailable: {reason}"


@contextlib.asynccontextmanager
async def open_redis(url: str, **options: Any) -> AsyncIterator[RedisConnection]:
    """``async with open_redis(url) as redis:`` — a `RedisConnection`, pinged."""
    async with RedisConnection(url, **options) as connection:
        await connection.ping()
        yield connection


class _RunConnections:
    """The connections `shared_connection` keeps open in one run, by URL."""

    def __init__(self) -> None:
        self.ready: dict[str, trio.Event] = {}
        self.open: dict[str, RedisConnection] = {}
        self.failed: dict[str, RedisUnavailableError] = {}


_RUN_CONNECTIONS: trio.lowlevel.RunVar[_RunConnections] = trio.lowlevel.RunVar(
    "trio_resilience_redis_connections"
)


async def shared_connection(url: str) -> RedisConnection:
    """The connection to ``url`` shared by everything in the current `trio.run`.

    The first call in a run opens it in a Trio system task, which keeps it open
    until the run ends (then it is closed by the run's own cancellation), so an
    object made at module level (a `RedisTokenBucketRateLimiter`, say) can use Redis
    in every run without an ``async with`` of its own, and never carries a
    connection from one run into the next. If Redis cannot be reached the call
    raises `RedisUnavailableError`, and the next call tries again.
    """
    try:
        connections = _RUN_CONNECTIONS.get()
    except LookupError:
        connections = _RunConnections()
        _RUN_CONNECTIONS.set(connections)
    while True:
        if (connection := connections.open.get(url)) is not None:
            return connection
        ready = connections.ready.get(url)
        if ready is None:
            ready = connections.ready[url] = trio.Event()
            connections.failed.pop(url, None)
            trio.lowlevel.spawn_system_task(_keep_open, url, connections, ready)
        await ready.wait()
        if (failure := connections.failed.get(url)) is not None:
            raise RedisUnavailableError(str(failure)) from failure


async def connection_for(target: str | RedisConnection) -> RedisConnection:
    """``target`` itself if it is an open `RedisConnection`, else the run's
    `shared_connection` to the URL ``target``: how the client-side twins find
    their connection on each use (so one made at module level works in every run).
    """
    if isinstance(target, RedisConnection):
        return target
    return await shared_connection(target)


async def _keep_open(url: str, connections: _RunConnections, ready: trio.Event) -> None:
    try:
        async with RedisConnection(url) as connection:
            connections.open[url] = connection
            ready.set()
            await trio.sleep_forever()
    except RedisUnavailableError as error:
        connections.failed[url] = error
    except BaseException:  # a system task must not crash the run
        pass  # cancelled at the end of the run, or closing failed: nothing to keep
    finally:
        connections.open.pop(url, None)
        if connections.ready.get(url) is ready:
            del connections.ready[url]
        ready.set()
