"""The fault rules (``/faults``) in Redis, shared by every worker process.

Redis holds each rule's definition (the JSON `FaultRuleIn` reads, with its seed)
and its order, and the rule's budget and counts; each worker keeps a local
`FaultPlan` built from those definitions as its matching engine, so a request that
matches no rule costs no round trip:

- **Changes** (add, remove, clear) are one Lua script each, which bumps a version
  and PUBLISHes it; every worker rebuilds its plan from Redis on each message,
  once at start, and whenever a poll (every `POLL_SECONDS`) finds the version
  moved (a message lost while Redis was away). The worker that made the change
  rebuilds before it answers; the others follow within a few milliseconds.
- **Decisions**: when the local plan finds rules that accept a request, one
  script (one round trip) counts the match and uses the budget of the first
  that fires, atomically, so ``times: N`` fires exactly N times across all
  workers, ``duration_seconds`` ends on the Redis clock, and ``matched`` /
  ``fired`` are global. A rule Redis reports spent, expired or deleted leaves the
  local index. A deleted rule never fires again on any worker, even one that has
  not rebuilt yet.
- **Probability** is decided locally with the rule's seeded generator before the
  script runs: the sequence is per process (each worker draws its own). Unlike
  in memory, ``matched`` does not count requests that reach a rule already spent
  or expired.

The ``/fail`` modes stay in `RedisFailureInjector` (not rules here); deleting
``fail-count`` or ``fail-duration`` switches that mode off, as in memory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import coredis.exceptions
import trio

from .._backend import BackendUnavailableError
from ..redis import RedisConnection
from ._fault_rules import FaultPlan, FaultRule, TooManyRules
from ._fault_schema import FaultRuleIn
from ._redis_state import RedisFailureInjector

POLL_SECONDS = 1.0
"""How often a worker checks the rules' version, in case it missed a message."""

_NOW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
"""
_LIVE = """
local function live(key)
  local v = redis.call('HMGET', key, 'remaining', 'ends')
  local remaining = tonumber(v[1] or '0')
  local ends = tonumber(v[2] or '0')
  return remaining ~= 0 and (ends == 0 or ends > now)
end
local function forget(id)
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('DEL', ARGV[1] .. id)
end
local function changed()
  local version = redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[2], version)
end
"""
# KEYS: definitions (hash), order (zset), version, sequence.
# ARGV: state key prefix, channel, id, definition, times (-1: none),
#       duration ms (0: none), max rules.
_ADD = (
    _NOW
    + _LIVE
    + """
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 1 then return -1 end
local max = tonumber(ARGV[7])
local count = redis.call('ZCARD', KEYS[2])
if count >= max then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
    if not live(ARGV[1] .. id) then
      forget(id)
      count = count - 1
      if count < max then break end
    end
  end
  if count >= max then return 0 end
end
local order = redis.call('INCR', KEYS[4])
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[2], order, ARGV[3])
local ms = tonumber(ARGV[6])
redis.call('HSET', ARGV[1] .. ARGV[3], 'remaining', ARGV[5],
           'ends', ms > 0 and now + ms or 0, 'matched', 0, 'fired', 0)
changed()
return 1
"""
)
# ARGV: state key prefix, channel, id.
_REMOVE = (
    _NOW
    + _LIVE
    + """
if redis.call('HEXISTS', KEYS[1], ARGV[3]) == 0 then return 0 end
forget(ARGV[3])
changed()
return 1
"""
)
# ARGV: state key prefix, channel, scope ('' for every rule).
_CLEAR = (
    _NOW
    + _LIVE
    + """
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if ARGV[3] == '' then
    forget(id)
  else
    local scope = cjson.decode(redis.call('HGET', KEYS[1], id))['match']['scope']
    if scope == ARGV[3] then forget(id) end
  end
end
changed()
return 1
"""
)
# ARGV: state key prefix, one id ('' for every rule).
# Rows: id, definition, remaining (-1: none), ms left (-1: none), matched, fired.
_LIST = (
    _NOW
    + """
local ids
if ARGV[2] == '' then
  ids = redis.call('ZRANGE', KEYS[2], 0, -1)
elseif redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1 then
  ids = {ARGV[2]}
else
  ids = {}
end
local rows = {}
for _, id in ipairs(ids) do
  local v = redis.call('HMGET', ARGV[1] .. id, 'remaining', 'ends', 'matched', 'fired')
  local ends = tonumber(v[2] or '0')
  local left = -1
  if ends > 0 then left = math.max(0, ends - now) end
  rows[#rows + 1] = {id, redis.call('HGET', KEYS[1], id), tonumber(v[1] or '0'),
                     left, tonumber(v[3] or '0'), tonumber(v[4] or '0')}
end
return {tonumber(redis.call('GET', KEYS[3]) or '0'), rows}
"""
)
# KEYS: the state hashes of the candidate rules, in order; ARGV: each one's dice.
# Codes: -1 deleted, 0 spent or expired, 2 declined by the dice, 1 fired,
# 3 fired and now spent. Stops at the first that fires.
_DECIDE = (
    _NOW
    + """
local codes = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('HMGET', key, 'remaining', 'ends')
  local code
  if not v[1] then
    code = -1
  else
    local remaining = tonumber(v[1])
    local ends = tonumber(v[2] or '0')
    if remaining == 0 or (ends > 0 and ends <= now) then
      code = 0
    else
      redis.call('HINCRBY', key, 'matched', 1)
      if ARGV[i] == '0' then
        code = 2
      else
        if remaining > 0 then
          remaining = redis.call('HINCRBY', key, 'remaining', -1)
        end
        redis.call('HINCRBY', key, 'fired', 1)
        code = remaining == 0 and 3 or 1
      end
    end
  end
  codes[i] = code
  if code == 1 or code == 3 then break end
end
return codes
"""
)

_MODES = ("fail-count", "fail-duration")
_CONNECTION_LOST = (
    BackendUnavailableError,
    coredis.exceptions.ConnectionError,
    OSError,
)


def definition(rule: FaultRule) -> dict[str, Any]:
    """What Redis keeps of a rule: the JSON form `FaultRuleIn` reads, with its
    seed (so every worker draws the same per-process sequence)."""
    view = rule.to_json(0.0)
    return {
        key: view[key]
        for key in ("match", "action", "times", "duration_seconds", "probability")
    } | {"seed": rule.seed}


class RedisFaultRules:
    """The `FaultRules` of every worker, in Redis; ``plan`` is this worker's
    matching engine, rebuilt from Redis (see the module docstring)."""

    def __init__(
        self,
        redis: RedisConnection,
        plan: FaultPlan,
        *,
        modes: RedisFailureInjector | None = None,
        prefix: str = "tr:rules",
    ) -> None:
        self._redis = redis
        self.plan = plan
        self._modes = modes
        self._keys = [f"{prefix}:defs", f"{prefix}:order", f"{prefix}:version"]
        self._sequence = f"{prefix}:seq"
        self._state_prefix = f"{prefix}:s:"
        self.channel = f"{prefix}:changed"
        self._add = redis.script(_ADD)
        self._remove = redis.script(_REMOVE)
        self._clear = redis.script(_CLEAR)
        self._list = redis.script(_LIST)
        self._decide = redis.script(_DECIDE)
        self._known: dict[str, FaultRule] = {}
        """The local rule objects by id, kept across rebuilds (their generators
        go on where they were)."""
        self.version = -1
        """The rules' version the local plan was last built from (-1: never)."""
        self._reload_lock = trio.Lock()
        self._wake = trio.Event()

    # The hot path.

    async def check(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> FaultRule | None:
        """The rule that fires for this request, if any: no round trip unless a
        local rule accepts it, then one."""
        if self.version < 0:
            await self.reload(first=True)
        candidates = [
            rule
            for rule in self.plan.matching(method, path, headers)
            if not rule.pinned
        ]
        if not candidates:
            return None
        dice = [
            "1"
            if rule.probability >= 1.0 or rule.rng.random() < rule.probability
            else "0"
            for rule in candidates
        ]
        codes = await self._decide(
            [self._state_prefix + rule.id for rule in candidates], dice
        )
        for rule, code in zip(candidates, codes, strict=False):
            if int(code) in (-1, 0, 3):
                self.plan.retire(rule)
            if int(code) in (1, 3):
                return rule
        return None

    # Changes and views.

    async def add(self, rule: FaultRule) -> dict[str, Any]:
        if rule.pinned:
            raise ValueError("pinned rules stay in memory")
        duration_ms = (
            0
            if rule.duration_seconds is None
            else max(1, round(rule.duration_seconds * 1000))
        )
        added = await self._add(
            [*self._keys, self._sequence],
            [
                self._state_prefix,
                self.channel,
                rule.id,
                json.dumps(definition(rule), separators=(",", ":")),
                -1 if rule.times is None else rule.times,
                duration_ms,
                self.plan.max_rules,
            ],
        )
        if int(added) == -1:
            raise ValueError(f"a fault rule with id {rule.id!r} exists already")
        if int(added) == 0:
            raise TooManyRules(
                f"at most {self.plan.max_rules} fault rules can be live at once; "
                "delete some first (DELETE /faults)"
            )
        self._known[rule.id] = rule
        await self.reload()
        return rule.to_json(self.plan.now())

    async def list(self, scope: str | None = None) -> list[dict[str, Any]]:
        """Every rule with its global counts, in one round trip."""
        _, rows = await self._list(self._keys, [self._state_prefix, ""])
        views = [self._view(row) for row in rows]
        return [v for v in views if scope is None or v["match"]["scope"] == scope]

    async def get(self, rule_id: str) -> dict[str, Any] | None:
        _, rows = await self._list(self._keys, [self._state_prefix, rule_id])
        return self._view(rows[0]) if rows else None

    async def remove(self, rule_id: str) -> bool:
        if rule_id in _MODES and self._modes is not None:
            if rule_id == "fail-count":
                await self._modes.fail_next(0)
            else:
                await self._modes.fail_for(0)
            return True
        removed = int(
            await self._remove(self._keys, [self._state_prefix, self.channel, rule_id])
        )
        await self.reload()
        return removed == 1

    async def clear(self, scope: str | None = None) -> None:
        await self._clear(self._keys, [self._state_prefix, self.channel, scope or ""])
        await self.reload()

    def _rule(self, rule_id: str, stored: bytes | str) -> FaultRule:
        rule = self._known.get(rule_id)
        if rule is None:
            rule = FaultRuleIn.model_validate_json(stored).to_rule(rule_id)
            self._known[rule_id] = rule
        return rule

    def _view(self, row: Sequence[Any]) -> dict[str, Any]:
        rule_id, stored, remaining, left_ms, matched, fired = row
        rule_id = _text(rule_id)
        view = self._rule(rule_id, stored).to_json(self.plan.now())
        remaining, left_ms = int(remaining), int(left_ms)
        view.update(
            remaining=None if remaining < 0 else remaining,
            remaining_seconds=None if left_ms < 0 else left_ms / 1000,
            matched=int(matched),
            fired=int(fired),
            live=remaining != 0 and left_ms != 0,
        )
        return view

    # Keeping the local plan in step.

    async def reload(self, *, first: bool = False) -> None:
        """Rebuild the local plan from Redis (its live rules, in order); with
        ``first``, only if it was never built (requests arriving before the
        relay's first load wait for one load, not one each)."""
        async with self._reload_lock:
            if first and self.version >= 0:
                return
            version, rows = await self._list(self._keys, [self._state_prefix, ""])
            live: list[FaultRule] = []
            seen: set[str] = set()
            for rule_id, stored, remaining, left_ms, *_ in rows:
                rule = self._rule(_text(rule_id), stored)
                seen.add(rule.id)
                if int(remaining) != 0 and int(left_ms) != 0:
                    live.append(rule)
            # No await from here on: requests see the old plan or the new one.
            for rule_id in set(self._known) - seen:
                del self._known[rule_id]
            self.plan.clear()
            for rule in live:
                self.plan.add(rule)
            self.version = int(version)

    async def relay(self) -> None:
        """Keep the local plan in step with Redis until cancelled: rebuild on each
        change message (and once subscribed), and poll the version as a fallback."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._listen)
            while True:
                with trio.move_on_after(POLL_SECONDS):
                    await self._wake.wait()
                woken, self._wake = self._wake.is_set(), trio.Event()
                try:
                    if woken or await self._version_moved():
                        await self.reload()
                except BackendUnavailableError:
                    pass  # the next message or poll tries again

    async def _version_moved(self) -> bool:
        key = self._keys[2]
        stored = await self._redis.run(lambda client: client.get(key))
        return int(stored or 0) != self.version

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.client.pubsub(channels=[self.channel]) as pubsub:
                    self._wake.set()  # subscribed: load what was missed meanwhile
                    async for message in pubsub:
                        if message["type"] == "message":
                            self._wake.set()
            except _CONNECTION_LOST:
                pass  # Redis away: the poll covers the gap
            await trio.sleep(POLL_SECONDS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
