"""The request journal (``/requests``) in one Redis stream, shared by every worker.

Recording stays off the request path: `RedisJournal.record` is synchronous and
only queues the entry in this process (at most ``size`` entries, the oldest
dropped first if Redis is away long); `run` writes the queue in batches, one Lua
script per batch (``XADD ... MAXLEN size`` per entry, so the stream keeps exactly
the newest ``size`` entries of all workers). ``GET /requests`` writes this
worker's own queue first, then reads the stream, so a request answered by another
worker shows up within a few milliseconds of its end (the time that worker takes
to write its queue), not necessarily at once. Each entry carries its scope, so a
read or a delete can keep to one scope.
"""

from __future__ import annotations

import contextlib
import json
from collections import deque

import trio

from .._backend import BackendUnavailableError
from ..redis import RedisConnection
from ._journal import JournalEntry

_APPEND = """
local size = tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', size, '*', 's', ARGV[i], 'e', ARGV[i + 1])
end
return 0
"""
# ARGV: scope token ('' for every entry), limit (0: none). Newest first.
_READ = """
local limit = tonumber(ARGV[2])
local out = {}
for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-')) do
  if limit > 0 and #out >= limit then break end
  local fields = entry[2]
  if ARGV[1] == '' or fields[2] == ARGV[1] then out[#out + 1] = fields[4] end
end
return out
"""
_CLEAR = """
if ARGV[1] == '' then
  redis.call('DEL', KEYS[1])
  return 0
end
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do
  if entry[2][2] == ARGV[1] then redis.call('XDEL', KEYS[1], entry[1]) end
end
return 0
"""
_RETRY_FIRST, _RETRY_MAX = 0.05, 1.0


def _scope_token(scope: str | None) -> str:
    """How an entry's scope is stored: '' for none, else ``=`` and the scope (so
    an empty scope stays apart from no scope)."""
    return "" if scope is None else "=" + scope


def _arrival(entry: JournalEntry) -> float:
    return entry.at


class RedisJournal:
    """`RequestJournal`'s entries in a Redis stream (see the module docstring)."""

    def __init__(
        self, redis: RedisConnection, size: int, *, key: str = "tr:journal"
    ) -> None:
        self._key = key
        self.size = size
        self._pending: deque[JournalEntry] = deque(maxlen=size)
        self._wake = trio.Event()
        self._writing = trio.Lock()
        self._append = redis.script(_APPEND)
        self._read = redis.script(_READ)
        self._clear = redis.script(_CLEAR)

    def __len__(self) -> int:
        """Entries queued here, not yet written."""
        return len(self._pending)

    def record(self, entry: JournalEntry) -> None:
        """Queue ``entry`` for the writer (no I/O: called as a request ends)."""
        self._pending.append(entry)
        self._wake.set()

    async def flush(self) -> None:
        """Write every entry queued so far (and wait for a batch being written)."""
        async with self._writing:
            while self._pending:
                batch = list(self._pending)
                self._pending.clear()
                args: list[str | int] = [self.size]
                for entry in batch:
                    args += [_scope_token(entry.scope), json.dumps(entry.to_json())]
                try:
                    await self._append([self._key], args)
                except BaseException:
                    # Put the batch back before what came meanwhile (the deque
                    # keeps the newest entries if that is too many).
                    kept = [*batch, *self._pending]
                    self._pending.clear()
                    self._pending.extend(kept)
                    raise

    async def run(self) -> None:
        """Write queued entries as they come, until cancelled (then once more,
        briefly, so a stopping worker leaves nothing behind if it can)."""
        pause = _RETRY_FIRST
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                try:
                    await self.flush()
                    pause = _RETRY_FIRST
                except BackendUnavailableError:
                    await trio.sleep(pause)
                    pause = min(pause * 2, _RETRY_MAX)
                    self._wake.set()
        finally:
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(1),
                contextlib.suppress(BackendUnavailableError),
            ):
                await self.flush()

    async def entries(
        self, scope: str | None = None, limit: int | None = None
    ) -> list[JournalEntry]:
        """As `RequestJournal.entries`, across every worker (this one's queue
        written first)."""
        await self.flush()
        found = await self._read([self._key], [_scope_token(scope), limit or 0])
        chosen = [JournalEntry(**json.loads(raw)) for raw in reversed(found)]
        chosen.sort(key=_arrival)  # stable: ties keep the order they ended in
        return chosen

    async def clear(self, scope: str | None = None) -> None:
        """Forget every entry, or only those of ``scope``, for every worker (this
        one's queue included)."""
        if scope is None:
            self._pending.clear()
        else:
            kept = [entry for entry in self._pending if entry.scope != scope]
            self._pending.clear()
            self._pending.extend(kept)
        await self._clear([self._key], [_scope_token(scope)])
