"""The Lua scripts of `RedisJobQueue`: each one round trip, atomic on the server.

Keys, under the queue's ``prefix`` (``tr:jobs`` by default)::

    {prefix}:seq        the last seq given (INCR)
    {prefix}:order      sorted set: job id by seq (paging)
    {prefix}:stream     the stream of job ids, read by the consumer group
    {prefix}:pending    how many jobs wait (max_queued is checked against it)
    {prefix}:running    how many jobs run
    {prefix}:finished   sorted set: finished job id by when it finished (retention)
    {prefix}:job:{id}   one hash per job (fields below)
    {prefix}:key:{key}  the job id of an idempotency key

A job's hash: ``id type payload key fp seq status attempt created started
finished error result results rbytes pbytes owner entry cancel``. Times are Unix
seconds on the Redis clock; ``payload``, ``result`` and ``results`` (the list of
intermediate results) are JSON; ``owner`` is the consumer running the job,
``entry`` its stream entry, ``cancel`` ``1`` once a cancel was asked of a running
job. The scripts derive the job and key names from the prefix (``ARGV``), so the
queue needs one Redis, not a cluster.
"""

from __future__ import annotations

FIELDS = (
    "id",
    "type",
    "payload",
    "key",
    "seq",
    "status",
    "attempt",
    "created",
    "started",
    "finished",
    "error",
    "result",
    "results",
    "rbytes",
    "pbytes",
)
"""The fields `GET` and `PAGE` answer, in this order."""

_CLOCK = """
local t = redis.call('TIME')
local now = t[1] .. '.' .. string.format('%06d', t[2])
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# Ends a job: its status and results, out of the counters, its stream entry acked
# and deleted, kept for ttl, at most max_retained finished jobs kept (the oldest
# dropped first, with their keys). Expects `now`, `now_us`, and:
#   prefix, job id, status, error, result, results, rbytes, ttl ms, max_retained,
#   group, the counter it leaves ('pending' or 'running').
_RETIRE = """
local function retire(prefix, id, status, error, result, results, rbytes,
                      ttl, max_retained, group, counter)
  local job = prefix .. ':job:' .. id
  local h = redis.call('HMGET', job, 'key', 'entry')
  redis.call('HSET', job, 'status', status, 'finished', now)
  if error ~= '' then redis.call('HSET', job, 'error', error) end
  if result ~= '' then redis.call('HSET', job, 'result', result) end
  if results ~= '' then
    redis.call('HSET', job, 'results', results, 'rbytes', rbytes)
  end
  redis.call('HDEL', job, 'owner', 'cancel')
  redis.call('DECR', prefix .. ':' .. counter)
  if h[2] then
    redis.call('XACK', prefix .. ':stream', group, h[2])
    redis.call('XDEL', prefix .. ':stream', h[2])
  end
  redis.call('PEXPIRE', job, ttl)
  if h[1] then redis.call('PEXPIRE', prefix .. ':key:' .. h[1], ttl) end
  local finished = prefix .. ':finished'
  redis.call('ZADD', finished, now_us, id)
  local function forget(old)
    local oldjob = prefix .. ':job:' .. old
    local key = redis.call('HGET', oldjob, 'key')
    if key and redis.call('GET', prefix .. ':key:' .. key) == old then
      redis.call('DEL', prefix .. ':key:' .. key)
    end
    redis.call('DEL', oldjob)
    redis.call('ZREM', prefix .. ':order', old)
  end
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', finished, '-inf',
                                  now_us - ttl * 1000, 'LIMIT', 0, 100)) do
    forget(old)
    redis.call('ZREM', finished, old)
  end
  local excess = redis.call('ZCARD', finished) - max_retained
  if excess > 0 then
    local popped = redis.call('ZPOPMIN', finished, excess)
    for i = 1, #popped, 2 do forget(popped[i]) end
  end
end
"""

# ARGV: prefix, id, type, payload, key ('' none), has fp (0/1), fp, max_queued,
# pbytes. -> {0, id} created; {1, id} the key's job; {2, id} key reused
# (another fingerprint); {3} full.
SUBMIT = (
    _CLOCK
    + """
local prefix, id = ARGV[1], ARGV[2]
if ARGV[5] ~= '' then
  local known = redis.call('GET', prefix .. ':key:' .. ARGV[5])
  if known then
    local fp = redis.call('HMGET', prefix .. ':job:' .. known, 'status', 'fp')
    if fp[1] then
      if ARGV[6] == '1' and fp[2] and fp[2] ~= ARGV[7] then return {2, known} end
      return {1, known}
    end
  end
end
if tonumber(redis.call('GET', prefix .. ':pending') or '0') >= tonumber(ARGV[8]) then
  return {3}
end
local seq = redis.call('INCR', prefix .. ':seq')
local job = prefix .. ':job:' .. id
redis.call('HSET', job, 'id', id, 'type', ARGV[3], 'payload', ARGV[4], 'seq', seq,
           'status', 'pending', 'attempt', 0, 'created', now, 'pbytes', ARGV[9],
           'rbytes', 0, 'results', '[]')
if ARGV[5] ~= '' then
  redis.call('HSET', job, 'key', ARGV[5])
  redis.call('SET', prefix .. ':key:' .. ARGV[5], id)
end
if ARGV[6] == '1' then redis.call('HSET', job, 'fp', ARGV[7]) end
redis.call('ZADD', prefix .. ':order', seq, id)
local entry = redis.call('XADD', prefix .. ':stream', '*', 'id', id)
redis.call('HSET', job, 'entry', entry)
redis.call('INCR', prefix .. ':pending')
return {0, id}
"""
)

# ARGV: prefix, id, entry, group, consumer, max_attempts, ttl ms, max_retained.
# A delivered entry becomes a run: -> {1, attempt, type, payload, results, rbytes}
# to run it; {0} to drop the delivery (the job is gone, finished, or its entry now
# belongs to another consumer); {2, attempts} the job was given up (failed) after
# max_attempts runs whose workers stopped without finishing them.
START = (
    _CLOCK
    + _RETIRE
    + """
local prefix, id, entry, group, consumer = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local stream = prefix .. ':stream'
local held = redis.call('XPENDING', stream, group, entry, entry, 1)
if not held[1] or held[1][2] ~= consumer then return {0} end
local job = prefix .. ':job:' .. id
local h = redis.call('HMGET', job, 'status', 'attempt', 'cancel', 'type', 'payload',
                     'results', 'rbytes')
if h[1] ~= 'pending' and h[1] ~= 'running' then
  redis.call('XACK', stream, group, entry)
  redis.call('XDEL', stream, entry)
  return {0}
end
local attempt = tonumber(h[2])
if h[1] == 'running' then  -- its worker stopped without finishing it
  if h[3] == '1' then
    retire(prefix, id, 'cancelled', 'cancelled', '', '', 0, tonumber(ARGV[7]),
           tonumber(ARGV[8]), group, 'running')
    return {0}
  end
  if attempt >= tonumber(ARGV[6]) then
    retire(prefix, id, 'failed',
           'given up after ' .. attempt .. ' attempts: each time its worker ' ..
           'stopped before the job finished', '', '', 0, tonumber(ARGV[7]),
           tonumber(ARGV[8]), group, 'running')
    return {2, attempt}
  end
else
  redis.call('DECR', prefix .. ':pending')
  redis.call('INCR', prefix .. ':running')
end
attempt = attempt + 1
redis.call('HSET', job, 'status', 'running', 'attempt', attempt, 'started', now,
           'owner', consumer, 'entry', entry)
return {1, attempt, h[4], h[5], h[6], h[7]}
"""
)

# ARGV: prefix, id, consumer, status, error, result, results, rbytes, ttl ms,
# max_retained, group. -> 1 recorded; 0 the job is no longer this consumer's run
# (another took it over after the lease lapsed: its run's outcome counts).
FINISH = (
    _CLOCK
    + _RETIRE
    + """
local prefix, id = ARGV[1], ARGV[2]
local h = redis.call('HMGET', prefix .. ':job:' .. id, 'status', 'owner')
if h[1] ~= 'running' or h[2] ~= ARGV[3] then return 0 end
retire(prefix, id, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9]),
       tonumber(ARGV[10]), ARGV[11], 'running')
return 1
"""
)

# ARGV: prefix, id, ttl ms, max_retained, group. -> 0 no such job; 1 cancelled (it
# was waiting); 2 asked of its worker (it runs); 3 already finished.
CANCEL = (
    _CLOCK
    + _RETIRE
    + """
local prefix, id = ARGV[1], ARGV[2]
local status = redis.call('HGET', prefix .. ':job:' .. id, 'status')
if not status then return 0 end
if status == 'pending' then
  retire(prefix, id, 'cancelled', 'cancelled', '', '', 0, tonumber(ARGV[3]),
         tonumber(ARGV[4]), ARGV[5], 'pending')
  return 1
end
if status == 'running' then
  redis.call('HSET', prefix .. ':job:' .. id, 'cancel', 1)
  return 2
end
return 3
"""
)

# The heartbeat of one consumer's running jobs. ARGV: prefix, group, consumer, then
# per job: id, entry, results ('' unchanged), rbytes. Resets each entry's idle time
# (XCLAIM ... JUSTID, only while the job is still this consumer's), stores new
# intermediate results, and answers the ids whose cancel was asked.
HEARTBEAT = """
local prefix, group, consumer = ARGV[1], ARGV[2], ARGV[3]
local cancelled = {}
for i = 4, #ARGV, 4 do
  local id, entry, results = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local job = prefix .. ':job:' .. id
  local h = redis.call('HMGET', job, 'owner', 'cancel', 'status')
  if h[1] == consumer and h[3] == 'running' then
    redis.call('XCLAIM', prefix .. ':stream', group, consumer, 0, entry, 'JUSTID')
    if results ~= '' then
      redis.call('HSET', job, 'results', results, 'rbytes', ARGV[i + 3])
    end
    if h[2] == '1' then cancelled[#cancelled + 1] = id end
  end
end
return cancelled
"""

# ARGV: prefix, group, consumer, min idle ms, count. Takes over the entries idle
# past the lease (their worker stopped): -> {entry, id, entry, id, ...}.
RECLAIM = """
local prefix = ARGV[1]
local claimed = redis.call('XAUTOCLAIM', prefix .. ':stream', ARGV[2], ARGV[3],
                           ARGV[4], '0-0', 'COUNT', ARGV[5])
local found = {}
for _, item in ipairs(claimed[2]) do
  if item[2] then
    found[#found + 1] = item[1]
    found[#found + 1] = item[2][2]
  end
end
return found
"""

# ARGV: prefix, after (exclusive seq bound, '-inf' from the start), limit, status
# ('' any), then FIELDS. -> {more (0/1), fields of job 1, fields of job 2, ...}
# Ids whose hash expired are dropped from the order as they are met.
PAGE = """
local prefix, limit, status = ARGV[1], tonumber(ARGV[3]), ARGV[4]
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
local order = prefix .. ':order'
local found, more, offset = {}, 0, 0
local bound = ARGV[2]
while true do
  local ids = redis.call('ZRANGEBYSCORE', order, bound, '+inf', 'LIMIT', offset, 200)
  if #ids == 0 then break end
  offset = offset + #ids
  for _, id in ipairs(ids) do
    local values = redis.call('HMGET', prefix .. ':job:' .. id, unpack(fields))
    if not values[1] then
      redis.call('ZREM', order, id)
      offset = offset - 1
    elseif status == '' or values[6] == status then
      if #found == limit then more = 1 break end
      found[#found + 1] = values
    end
  end
  if more == 1 then break end
end
return {more, found}
"""

STATISTICS = """
local prefix = ARGV[1]
return {tonumber(redis.call('GET', prefix .. ':pending') or '0'),
        tonumber(redis.call('GET', prefix .. ':running') or '0'),
        redis.call('ZCARD', prefix .. ':finished')}
"""
