"""The ``/fail`` modes and the ``/msg`` idempotency cache in Redis, for N workers.

Both keep the behaviour of their in-memory twins (`FailureInjector`,
`SingleFlight`) across every worker process that shares the Redis database, with
one Lua script per decision, so one round trip:

- **Failure check** (``GET /msg``): ``fail.lua`` counts the request, uses one of
  the count mode's failures if any are left, else fails if the duration mode's end
  (on the Redis clock, so all workers agree) is still ahead. `/fail/count/3`
  fails exactly 3 requests, whichever workers they reach.
- **Idempotent answer** (``X-Request-ID``): ``claim`` returns the stored answer
  (a replay) or makes the caller the owner, with a random token and a lease; the
  owner renews the lease while it works and completes with a compare-and-set on
  its token, which also publishes the key. Waiters wake on that message (one
  subscriber per process) and poll as a fallback; if the owner dies, its lease
  expires and a waiter takes over. A failed or cancelled creation releases the
  claim, so a failure never poisons the key, as in memory.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable, Sequence

import trio

from .._backend import BackendUnavailableError
from .._service import open_service_nursery
from ..redis import RedisConnection
from ._fault_rules import FaultRule
from ._faults import FailureStatus, checked_count, checked_seconds, mode_rule

_FAIL_CHECK = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('HINCRBY', KEYS[1], 'seen', 1)
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
if count > 0 then
  redis.call('HINCRBY', KEYS[1], 'count', -1)
  redis.call('HINCRBY', KEYS[1], 'injected', 1)
  return 1
end
local ends = tonumber(redis.call('HGET', KEYS[1], 'ends') or '0')
if ends > now then
  redis.call('HINCRBY', KEYS[1], 'injected', 1)
  return 2
end
return 0
"""
_FAIL_SET = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if ARGV[1] == 'count' then
  redis.call('HSET', KEYS[1], 'count', ARGV[2])
elseif ARGV[1] == 'duration' then
  local ms = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'ends', ms > 0 and now + ms or 0)
elseif ARGV[1] == 'reset' then
  redis.call('HSET', KEYS[1], 'count', 0, 'ends', 0)
end
local v = redis.call('HMGET', KEYS[1], 'count', 'ends', 'seen', 'injected')
local ends = tonumber(v[2] or '0')
return {tonumber(v[1] or '0'), ends > now and ends - now or 0,
        tonumber(v[3] or '0'), tonumber(v[4] or '0')}
"""


class RedisFailureInjector:
    """`FailureInjector`'s modes in one Redis hash, shared by every worker."""

    def __init__(self, redis: RedisConnection, *, prefix: str = "tr") -> None:
        self._key = f"{prefix}:fail"
        self._check = redis.script(_FAIL_CHECK)
        self._set = redis.script(_FAIL_SET)
        self._rules = {1: mode_rule("fail-count"), 2: mode_rule("fail-duration")}

    async def check(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> FaultRule | None:
        """The mode that fails this request, if it is a ``GET /msg`` and one does."""
        if method != "GET" or path != "/msg":
            return None
        return self._rules.get(int(await self._check([self._key])))

    async def _change(self, mode: str, value: int) -> FailureStatus:
        count, remaining_ms, seen, injected = await self._set(
            [self._key], [mode, value]
        )
        remaining = int(remaining_ms) / 1000
        return FailureStatus(
            count_remaining=int(count),
            duration_remaining_seconds=remaining,
            failing=int(count) > 0 or remaining > 0,
            requests_seen=int(seen),
            failures_injected=int(injected),
        )

    async def fail_next(self, count: int) -> None:
        await self._change("count", checked_count(count))

    async def fail_for(self, seconds: float) -> None:
        await self._change("duration", round(checked_seconds(seconds) * 1000))

    async def reset(self) -> None:
        await self._change("reset", 0)

    async def status(self) -> FailureStatus:
        return await self._change("status", 0)


_CLAIM = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, ''} end
return {0, ''}
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_COMPLETE = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return {0, redis.call('GET', KEYS[1]) or ''}
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[4], KEYS[1])
return {1, ARGV[2]}
"""
_RELEASE = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[2], KEYS[1])
end
return 0
"""

CLAIM_LEASE_SECONDS = 2.0
"""How long a claim lasts without renewal: a waiter takes over this long after
the owner's process died."""
_POLL_FIRST, _POLL_MAX = 0.002, 0.05


class RedisSingleFlight:
    """`SingleFlight` across processes: one creation per key, in Redis.

    Answers live ``ttl`` seconds (``SERVER_CACHE_TTL_SECONDS``); Redis drops them
    by time, not by count, so ``SERVER_CACHE_MAX_SIZE`` does not apply.
    """

    def __init__(
        self,
        redis: RedisConnection,
        *,
        ttl: float,
        prefix: str = "tr:msg",
        lease: float = CLAIM_LEASE_SECONDS,
    ) -> None:
        self._prefix = prefix
        self._ttl_ms = max(1, round(ttl * 1000))
        self._lease = lease
        self.channel = f"{prefix}:done"
        self._claim = redis.script(_CLAIM)
        self._renew = redis.script(_RENEW)
        self._complete = redis.script(_COMPLETE)
        self._release = redis.script(_RELEASE)
        self._wakeups: dict[str, trio.Event] = {}

    def notify(self, key: str) -> None:
        """Wake the local waiters of a value key (called by the subscriber)."""
        event = self._wakeups.pop(key, None)
        if event is not None:
            event.set()

    async def get_or_create(
        self, key: str, create: Callable[[], Awaitable[str]]
    ) -> tuple[str, bool]:
        """The value for ``key`` and whether it was an earlier caller's (a replay)."""
        keys = [f"{self._prefix}:v:{key}", f"{self._prefix}:lock:{key}"]
        token = secrets.token_hex(8)
        lease_ms = str(round(self._lease * 1000))
        pause = _POLL_FIRST
        while True:
            state, value = await self._claim(keys, [token, lease_ms])
            if state == 1:
                return _text(value), True
            if state == 2:
                created = await self._create_as_owner(keys, token, create)
                if created is not None:
                    return created
                continue  # lost the claim while working: another owner finished
            event = self._wakeups.setdefault(keys[0], trio.Event())
            with trio.move_on_after(pause):
                await event.wait()
            pause = min(pause * 2, _POLL_MAX)

    async def _create_as_owner(
        self, keys: list[str], token: str, create: Callable[[], Awaitable[str]]
    ) -> tuple[str, bool] | None:
        lease_ms = str(round(self._lease * 1000))
        try:
            async with open_service_nursery() as nursery:
                nursery.start_soon(self._keep_claim, keys[1], token, lease_ms)
                value = await create()
        except BaseException:
            # If Redis is away the lease runs out by itself.
            with (
                trio.CancelScope(shield=True),
                trio.move_on_after(1),
                contextlib.suppress(BackendUnavailableError),
            ):
                await self._release(keys, [token, self.channel])
            raise
        done, stored = await self._complete(
            keys, [token, value, self._ttl_ms, self.channel]
        )
        if done == 1:
            return value, False
        if stored:
            return _text(stored), True
        return None

    async def _keep_claim(self, lock: str, token: str, lease_ms: str) -> None:
        while True:
            await trio.sleep(self._lease / 3)
            await self._renew([lock], [token, lease_ms])


async def relay_completions(redis: RedisConnection, flight: RedisSingleFlight) -> None:
    """Wake ``flight``'s local waiters when any worker completes a key (pub/sub).

    Runs until cancelled; while Redis is away coredis resubscribes, and the
    waiters' polling covers the gap.
    """
    async with redis.client.pubsub(channels=[flight.channel]) as pubsub:
        async for message in pubsub:
            if message["type"] == "message":
                data = message["data"]
                if isinstance(data, bytes | str):
                    flight.notify(_text(data))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
