"""The CRUD demo's collections in Redis, shared by every worker process.

`RedisResourceStore` is the `ResourceBackend` twin of `ResourceStore`: the same
records, pages, idempotency keys and errors, but in a Redis database, so N worker
processes serve one collection. Under ``{prefix}:{name}``:

- ``:seq`` — the last id given (``INCR``);
- ``:ids`` — a sorted set of the ids (score = id): pages in id order;
- ``:rec`` — a hash, id -> the record's data as JSON (without its id);
- ``:keyof`` — a hash, id -> the idempotency key that created the record;
- ``:key:{key}`` — a hash per idempotency key: ``id``, ``fp`` (the fingerprint,
  absent for None), ``gone`` (``1`` once the record is deleted: then the hash
  expires after ``key_retention`` seconds, ``PEXPIRE``);
- ``:gone`` — a sorted set of the keys of deleted records (score = when they
  expire, in µs on the Redis clock), to keep at most ``max_items`` of them, the
  oldest forgotten first.

Create, replace, delete, a page and the statistics are each one Lua script, so one
round trip, and atomic across processes: one ``X-Request-ID`` posted by many
workers at once creates one record. A get is one ``HGET``. Retention runs on the
Redis clock (all workers agree), not on trio's. The scripts name keys they derive
(``:key:{key}``), so they need one Redis, not a cluster.
"""

from __future__ import annotations

import json
from typing import Any

from .._validation import check_int, check_number
from ..redis import RedisConnection
from ._resources import (
    Created,
    KeyGoneError,
    KeyReusedError,
    Page,
    ResourceStoreStatistics,
    StoreFullError,
)

# KEYS: seq, ids, rec, keyof, gone, key hash (or '').
# ARGV: data, max_items, key, has fingerprint (0/1), fingerprint.
# -> {0, id} created; {1, id, data} replayed; {2, id} key reused; {3, id} key
#    gone; {4} full.
_CREATE = """
if KEYS[6] ~= '' then
  local known = redis.call('HMGET', KEYS[6], 'id', 'fp', 'gone')
  if known[1] then
    if ARGV[4] == '1' and known[2] and known[2] ~= ARGV[5] then
      return {2, tonumber(known[1])}
    end
    if known[3] then return {3, tonumber(known[1])} end
    return {1, tonumber(known[1]), redis.call('HGET', KEYS[3], known[1])}
  end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return {4} end
local id = redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[3], id, ARGV[1])
redis.call('ZADD', KEYS[2], id, id)
if KEYS[6] ~= '' then
  redis.call('HSET', KEYS[6], 'id', id)
  if ARGV[4] == '1' then redis.call('HSET', KEYS[6], 'fp', ARGV[5]) end
  redis.call('HSET', KEYS[4], id, ARGV[3])
  redis.call('ZREM', KEYS[5], ARGV[3])
end
return {0, id}
"""

# KEYS: rec. ARGV: id, data. -> 1 replaced, 0 absent.
_REPLACE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: ids, rec, keyof, gone. ARGV: id, key_retention (ms), max_items, key prefix.
# -> 1 deleted, 0 absent. Scores in :gone are expiry times in microseconds, kept
# strictly increasing so that they keep the order of deletion.
_DELETE = """
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
local key = redis.call('HGET', KEYS[3], ARGV[1])
if not key then return 1 end
redis.call('HDEL', KEYS[3], ARGV[1])
local retention = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('HSET', ARGV[4] .. key, 'gone', 1)
redis.call('PEXPIRE', ARGV[4] .. key, retention)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local expires = now + retention * 1000
local last = redis.call('ZRANGE', KEYS[4], -1, -1, 'WITHSCORES')
if last[2] and tonumber(last[2]) >= expires then expires = tonumber(last[2]) + 1 end
redis.call('ZADD', KEYS[4], expires, key)
local excess = redis.call('ZCARD', KEYS[4]) - tonumber(ARGV[3])
if excess > 0 then
  for _, old in ipairs(redis.call('ZPOPMIN', KEYS[4], excess)) do
    if redis.call('HGET', ARGV[4] .. old, 'gone') then
      redis.call('DEL', ARGV[4] .. old)
    end
  end
end
return 1
"""

# KEYS: ids, rec. ARGV: after (exclusive score bound), limit.
# -> {more (0/1), {id, ...}, {data, ...}}.
_PAGE = """
local limit = tonumber(ARGV[2])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf', 'LIMIT', 0, limit + 1)
local more = 0
if #ids > limit then
  more = 1
  ids[#ids] = nil
end
local records = {}
for first = 1, #ids, 1000 do
  local chunk = {unpack(ids, first, math.min(first + 999, #ids))}
  for _, data in ipairs(redis.call('HMGET', KEYS[2], unpack(chunk))) do
    records[#records + 1] = data
  end
end
return {more, ids, records}
"""

# KEYS: ids, keyof, gone. -> {records, keys, deleted keys}.
_STATISTICS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
return {redis.call('ZCARD', KEYS[1]), redis.call('HLEN', KEYS[2]),
        redis.call('ZCARD', KEYS[3])}
"""


class RedisResourceStore:
    """A `ResourceBackend` in Redis: one collection, ``name``, shared by every
    process using the same database.

    It behaves as `ResourceStore` does, except that ``key_retention`` runs on the
    Redis server's clock (a trio mock clock does not move it) and that every
    method may raise `RedisUnavailableError`. It holds no state of its own.

    ::

        async with open_redis("redis://127.0.0.1:6380/0") as redis:
            items = RedisResourceStore(
                redis, "items", max_items=10_000, key_retention=86_400
            )
            created = await items.create({"name": "pen"}, key="k-1", fingerprint="f")
    """

    def __init__(
        self,
        connection: RedisConnection,
        name: str,
        *,
        max_items: int,
        key_retention: float,
        prefix: str = "tr:crud",
    ) -> None:
        if not name:
            raise ValueError("name must not be empty")
        self._max_items = check_int("max_items", max_items, minimum=1)
        retention = check_number("key_retention", key_retention, above=0)
        self._retention_ms = max(1, round(retention * 1000))
        base = f"{prefix}:{name}"
        self._seq = f"{base}:seq"
        self._ids = f"{base}:ids"
        self._rec = f"{base}:rec"
        self._keyof = f"{base}:keyof"
        self._gone = f"{base}:gone"
        self._key_prefix = f"{base}:key:"
        self._connection = connection
        self._create = connection.script(_CREATE)
        self._replace = connection.script(_REPLACE)
        self._delete = connection.script(_DELETE)
        self._page = connection.script(_PAGE)
        self._statistics = connection.script(_STATISTICS)

    @property
    def max_items(self) -> int:
        return self._max_items

    async def get(self, record_id: int) -> dict[str, Any] | None:
        """The record with this id, or None."""
        field = str(record_id)
        data = await self._connection.run(lambda client: client.hget(self._rec, field))
        return None if data is None else _record(record_id, data)

    async def create(
        self,
        data: dict[str, Any],
        *,
        key: str | None = None,
        fingerprint: str | None = None,
    ) -> Created:
        """A new record ``{"id": ..., **data}``, or the one ``key`` created before;
        the same rules as `ResourceStore.create`, atomically across processes."""
        encoded = _encode(data)
        keys = [self._seq, self._ids, self._rec, self._keyof, self._gone]
        keys.append("" if key is None else self._key_prefix + key)
        args: list[str | int] = [
            encoded,
            self._max_items,
            key or "",
            0 if fingerprint is None else 1,
            fingerprint or "",
        ]
        answer = await self._create(keys, args)
        outcome = int(answer[0])
        if outcome == 0:
            return Created(record={"id": int(answer[1]), **data}, replayed=False)
        if outcome == 4:
            raise StoreFullError(self._max_items)
        assert key is not None  # outcomes 1 to 3 come from a key
        record_id = int(answer[1])
        if outcome == 1:
            return Created(record=_record(record_id, answer[2]), replayed=True)
        if outcome == 2:
            raise KeyReusedError(key, record_id)
        raise KeyGoneError(key, record_id)

    async def replace(
        self, record_id: int, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Replace a record's data, keeping its id, place and key; None if absent."""
        done = await self._replace([self._rec], [str(record_id), _encode(data)])
        return {"id": record_id, **data} if int(done) else None

    async def delete(self, record_id: int) -> bool:
        """Delete a record (its key is retained as deleted); False if absent."""
        keys = [self._ids, self._rec, self._keyof, self._gone]
        args: list[str | int] = [
            str(record_id),
            self._retention_ms,
            self._max_items,
            self._key_prefix,
        ]
        return bool(int(await self._delete(keys, args)))

    async def page(self, *, after: int | None, limit: int) -> Page:
        """The first ``limit`` records with an id above ``after`` (None: from the
        start), in id order."""
        check_int("limit", limit, minimum=1)
        bound = "-inf" if after is None else f"({int(after)}"
        more, ids, records = await self._page([self._ids, self._rec], [bound, limit])
        found = [
            _record(int(record_id), data)
            for record_id, data in zip(ids, records, strict=True)
        ]
        return Page(
            records=found,
            next_after=found[-1]["id"] if int(more) and found else None,
        )

    async def statistics(self) -> ResourceStoreStatistics:
        """How many records and keys the store holds now."""
        records, keys, deleted = await self._statistics(
            [self._ids, self._keyof, self._gone]
        )
        return ResourceStoreStatistics(
            records=int(records),
            max_items=self._max_items,
            keys=int(keys),
            deleted_keys=int(deleted),
        )


def _encode(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def _record(record_id: int, data: bytes | str) -> dict[str, Any]:
    return {"id": record_id, **json.loads(data)}
