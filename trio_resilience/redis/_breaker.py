"""`CircuitBreaker`'s twin in Redis: one breaker state shared by many processes.

The state lives in one Redis hash, changed only by Lua scripts, each one round trip
and atomic on the server, on the Redis clock::

    state        closed | open | half_open
    failures     the streak of consecutive failures (reset by a success)
    opened_at    when it last opened (microseconds, Redis clock)
    probe        the token of the half-open probe out now, if any
    probe_until  when that probe's claim lapses (-1: never)
    successes, total_failures, rejections, expired_probes   counters

The transitions are the in-memory breaker's: CLOSED -> OPEN after
``failure_threshold`` consecutive failures, OPEN -> HALF_OPEN once
``recovery_timeout`` has passed, HALF_OPEN -> CLOSED on the probe's success and
-> OPEN on its failure. In HALF_OPEN exactly one probe is admitted across every
process: the admitting script claims it with a random token, and the claim lapses
after the probe timeout, so a probe whose process died frees the slot by itself.
"""

from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

import trio

from .._breaker import CircuitBreakerOpenError, CircuitBreakerStatistics, CircuitState
from .._exceptions import ExceptionSpec, is_cancellation, make_matcher
from .._validation import check_async_callable, check_int, check_number
from ._connection import RedisConnection, RedisUnavailableError, connection_for

P = ParamSpec("P")
T = TypeVar("T")

_CLOCK = """
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local function fmt(x) return string.format('%.17g', x) end
"""

# OPEN turns HALF_OPEN once the recovery timeout is over (ARGV[1], microseconds);
# a transition frees the probe slot. Expects `now`, `key` and `h` (the HMGET below).
_REFRESH = """
local state = h[1] or 'closed'
if state == 'open' and now >= tonumber(h[2]) + tonumber(ARGV[1]) then
  state = 'half_open'
  redis.call('HSET', key, 'state', state)
  redis.call('HDEL', key, 'probe', 'probe_until')
  h[4], h[5] = false, false
end
"""
_READ = (
    _CLOCK
    + """
local key = KEYS[1]
local h = redis.call('HMGET', key, 'state', 'opened_at', 'failures', 'probe',
                     'probe_until')
"""
    + _REFRESH
)

# ARGV: recovery, probe timeout (-1: none), token. Returns {verdict, state, seconds}:
# verdict 1 admitted (CLOSED), 2 admitted as the probe (seconds: until its claim
# lapses, -1 never), 0 rejected (seconds: until a probe may be admitted).
_ADMIT = (
    _READ
    + """
if state == 'closed' then return {1, state, '0'} end
if state == 'half_open' then
  local holder, lapses = h[4], tonumber(h[5] or '-1')
  if holder and lapses >= 0 and lapses <= now then
    redis.call('HINCRBY', key, 'expired_probes', 1)
    holder = false
  end
  if not holder then
    local timeout = tonumber(ARGV[2])
    local until_ = -1
    if timeout >= 0 then until_ = now + timeout end
    redis.call('HSET', key, 'probe', ARGV[3], 'probe_until', fmt(until_))
    if until_ < 0 then return {2, state, '-1'} end
    return {2, state, fmt(until_), fmt(timeout)}
  end
  redis.call('HINCRBY', key, 'rejections', 1)
  if lapses < 0 then return {0, state, '0'} end
  return {0, state, fmt(lapses - now)}
end
redis.call('HINCRBY', key, 'rejections', 1)
return {0, state, fmt(tonumber(h[2]) + tonumber(ARGV[1]) - now)}
"""
)

# ARGV: recovery, outcome (success | failure | ignore), threshold, probe token ('' for
# a call that is not a probe), the probe's lapse time (-1: never).
# Returns {counted (1) or not (0), state}.
_RECORD = (
    _CLOCK
    + """
local key = KEYS[1]
local h = redis.call('HMGET', key, 'state', 'opened_at', 'failures', 'probe',
                     'probe_until')
local outcome, token = ARGV[2], ARGV[4]
if token ~= '' then
  local holds = h[4] == token
  if holds then
    redis.call('HDEL', key, 'probe', 'probe_until')
    h[4], h[5] = false, false
  end
  local lapses = tonumber(ARGV[5])
  if lapses >= 0 and now >= lapses then
    if holds then redis.call('HINCRBY', key, 'expired_probes', 1) end
    outcome = 'ignore'
  end
end
"""
    + _REFRESH
    + """
if outcome == 'success' then
  redis.call('HINCRBY', key, 'successes', 1)
  if state == 'closed' then
    redis.call('HSET', key, 'failures', 0)
  elseif state == 'half_open' then
    state = 'closed'
    redis.call('HSET', key, 'state', state, 'failures', 0)
    redis.call('HDEL', key, 'probe', 'probe_until')
  end
elseif outcome == 'failure' then
  redis.call('HINCRBY', key, 'total_failures', 1)
  local open = state == 'half_open'
  if state == 'closed' then
    open = redis.call('HINCRBY', key, 'failures', 1) >= tonumber(ARGV[3])
  end
  if open then
    state = 'open'
    redis.call('HSET', key, 'state', state, 'opened_at', fmt(now))
    redis.call('HDEL', key, 'probe', 'probe_until')
  end
else
  return {0, state}
end
return {1, state}
"""
)

_PEEK = (
    _READ
    + """
local v = redis.call('HMGET', key, 'failures', 'successes', 'total_failures',
                     'rejections', 'expired_probes')
local probes, retry, until_half_open = 0, 0, 0
if state == 'open' then
  until_half_open = math.max(0, tonumber(h[2]) + tonumber(ARGV[1]) - now)
  retry = until_half_open
elseif state == 'half_open' and h[4] then
  local lapses = tonumber(h[5] or '-1')
  if lapses < 0 then
    probes = 1
  elseif lapses > now then
    probes, retry = 1, lapses - now
  end
end
return {state, v[1] or '0', probes, fmt(until_half_open), v[2] or '0',
        v[3] or '0', v[4] or '0', fmt(retry), v[5] or '0'}
"""
)

_RESET = """
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0)
redis.call('HDEL', KEYS[1], 'probe', 'probe_until')
return 1
"""

SETTLE_TIMEOUT = 5.0
"""How long recording an outcome may take: it is shielded from cancellation (a call
that finished deserves to be counted), but never for longer than this."""

_STATES = {state.value: state for state in CircuitState}


class _Scripts:
    """The breaker's scripts, registered on one connection."""

    def __init__(self, connection: RedisConnection) -> None:
        self.connection = connection
        self.admit = connection.script(_ADMIT)
        self.record = connection.script(_RECORD)
        self.peek = connection.script(_PEEK)
        self.reset = connection.script(_RESET)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _seconds(microseconds: object) -> float:
    return float(_text(microseconds)) / 1e6


class RedisCircuitBreaker:
    """`CircuitBreaker` with its state in Redis, shared by every process.

    Breakers made with the same Redis database and ``name`` (and the same
    settings) are one breaker: failures recorded in one process open it for all,
    and in HALF_OPEN exactly one call, in whichever process asks first, is admitted
    as the probe. The usage forms are the in-memory breaker's::

        breaker = RedisCircuitBreaker("redis://127.0.0.1:6380/0", "payments")

        async with breaker:              # the outcome of the block is recorded
            await call_service()

        @breaker                         # each call of the function is guarded
        async def call_service(): ...

        await breaker.record_failure()   # manual bookkeeping
        await breaker.record_success()

    A rejected call raises `CircuitBreakerOpenError` (message "Circuit breaker is
    OPEN ..."; ``retry_after`` and ``name`` set). ``expected_exception`` and
    ``ignored_exception`` mean what they mean in memory, and cancellation never
    counts. Times are the Redis server's clock (real time, even under
    `trio.testing.MockClock`). The probe's claim lapses after
    ``half_open_probe_timeout`` seconds (default ``recovery_timeout``; with
    ``recovery_timeout=0`` and no probe timeout it never lapses, so a dead probe
    would keep the breaker HALF_OPEN: set one), after which its outcome is ignored.

    Admission is one script call, and so is recording an outcome (none for a
    non-probe call whose outcome counts as nothing). Recording is shielded from
    cancellation for at most `SETTLE_TIMEOUT` seconds. `state` is synchronous and
    so cannot ask Redis: it is the state this object last saw (CLOSED before any
    call); ``await current_state()`` asks. Shared state outlives a `trio.run`, by
    design: a breaker made at module level sees in each run what Redis holds.

    ``url`` is a Redis URL (its connection is `shared_connection`'s, one per
    `trio.run`) or an open `RedisConnection`. When Redis cannot be reached every
    operation raises `RedisUnavailableError`; no call is admitted blind. If a
    guarded call raised and its outcome then cannot be recorded, the call's own
    exception propagates, with a note saying so.
    """

    def __init__(
        self,
        url: str | RedisConnection,
        name: str,
        failure_threshold: int = 5,
        recovery_timeout: float = 30.0,
        *,
        expected_exception: ExceptionSpec = Exception,
        ignored_exception: ExceptionSpec | None = None,
        half_open_probe_timeout: float | None = None,
    ) -> None:
        if not isinstance(url, str | RedisConnection):
            raise TypeError(
                f"url must be a str or a RedisConnection, not {type(url).__name__}"
            )
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not name:
            raise ValueError("name must not be empty")
        self._failure_threshold = check_int(
            "failure_threshold", failure_threshold, minimum=1
        )
        self._recovery_timeout = check_number(
            "recovery_timeout", recovery_timeout, at_least=0
        )
        if half_open_probe_timeout is not None:
            half_open_probe_timeout = check_number(
                "half_open_probe_timeout", half_open_probe_timeout, above=0
            )
            probe_timeout = half_open_probe_timeout
        elif self._recovery_timeout > 0:
            probe_timeout = self._recovery_timeout
        else:
            probe_timeout = math.inf
        self._probe_timeout = probe_timeout
        self._counts = make_matcher(expected_exception, name="expected_exception")
        self._ignores = None
        if ignored_exception is not None:
            self._ignores = make_matcher(ignored_exception, name="ignored_exception")
        self._url = url
        self._name = name
        self._key = f"trio_resilience:breaker:{name}"
        self._scripts: _Scripts | None = None
        self._last_state = CircuitState.CLOSED
        self._entered: dict[trio.lowlevel.Task, list[RedisCircuitBreakerTicket]] = {}

    def __repr__(self) -> str:
        return (
            f"<RedisCircuitBreaker name={self._name!r}"
            f" failure_threshold={self._failure_threshold}"
            f" recovery_timeout={self._recovery_timeout:g}"
            f" last seen {self._last_state.name}>"
        )

    @property
    def name(self) -> str:
        """The breaker's name, shared by every process that uses it."""
        return self._name

    @property
    def key(self) -> str:
        """The Redis hash that holds the state."""
        return self._key

    @property
    def failure_threshold(self) -> int:
        """Consecutive failures that open the breaker."""
        return self._failure_threshold

    @property
    def recovery_timeout(self) -> float:
        """Seconds the breaker stays OPEN before it admits a probe."""
        return self._recovery_timeout

    @property
    def state(self) -> CircuitState:
        """The state this object last saw in Redis (CLOSED before it saw any).

        Other processes may have changed it since; ``await current_state()`` asks.
        """
        return self._last_state

    # -- talking to Redis ---------------------------------------------------------

    async def _get_scripts(self) -> _Scripts:
        connection = await connection_for(self._url)
        scripts = self._scripts
        if scripts is None or scripts.connection is not connection:
            scripts = self._scripts = _Scripts(connection)
        return scripts

    def _micros(self, seconds: float) -> str:
        return "-1" if seconds == math.inf else repr(seconds * 1e6)

    def _seen(self, state: object) -> CircuitState:
        self._last_state = _STATES[_text(state)]
        return self._last_state

    # -- observing ----------------------------------------------------------------

    async def current_state(self) -> CircuitState:
        """The state in Redis now (one round trip); also updates `state`."""
        return (await self.statistics()).state

    async def statistics(self) -> CircuitBreakerStatistics:
        """The shared state and the counters of every process, as a snapshot.

        ``half_open_calls`` is 1 while a probe holds its claim; ``expired_probes``
        counts probes whose claim lapsed before they settled.
        """
        scripts = await self._get_scripts()
        reply = await scripts.peek([self._key], [self._micros(self._recovery_timeout)])
        state, failures, probes, until_half_open = reply[:4]
        successes, total_failures, rejections, retry, expired = reply[4:]
        return CircuitBreakerStatistics(
            state=self._seen(state),
            consecutive_failures=int(failures),
            half_open_calls=int(probes),
            seconds_until_half_open=_seconds(until_half_open),
            total_successes=int(successes),
            total_failures=int(total_failures),
            total_rejections=int(rejections),
            retry_after=_seconds(retry),
            expired_probes=int(expired),
        )

    # -- recording ----------------------------------------------------------------

    async def _record(
        self, outcome: str, token: str = "", lapses: str = "-1", *, shield: bool
    ) -> bool:
        scripts = await self._get_scripts()
        args = [self._micros(self._recovery_timeout), outcome]
        args += [str(self._failure_threshold), token, lapses]
        if not shield:
            reply = await scripts.record([self._key], args)
        else:
            with trio.move_on_after(SETTLE_TIMEOUT, shield=True) as scope:
                reply = await scripts.record([self._key], args)
            if scope.cancelled_caught:
                raise RedisUnavailableError(
                    f"Redis did not record the outcome within {SETTLE_TIMEOUT:g}s"
                )
        self._seen(reply[1])
        return bool(reply[0])

    async def record_success(self) -> None:
        """Record a successful call made outside ``async with`` / the decorator."""
        await self._record("success", shield=False)

    async def record_failure(self) -> None:
        """Record a failed call made outside ``async with`` / the decorator."""
        await self._record("failure", shield=False)

    async def reset(self) -> None:
        """Force the breaker CLOSED with a clean failure streak, for every process."""
        scripts = await self._get_scripts()
        await scripts.reset([self._key])
        self._last_state = CircuitState.CLOSED

    # -- guarding calls -------------------------------------------------------------

    async def admit(self) -> RedisCircuitBreakerTicket:
        """Admit one call (one round trip), or raise `CircuitBreakerOpenError`.

        The ticket must be settled once with the call's outcome::

            ticket = await breaker.admit()
            try:
                result = await call_service()
            except BaseException as exc:
                await ticket.settle(exc)
                raise
            await ticket.settle()
        """
        scripts = await self._get_scripts()
        token = secrets.token_hex(8)
        args = [self._micros(self._recovery_timeout)]
        args += [self._micros(self._probe_timeout), token]
        reply = await scripts.admit([self._key], args)
        verdict, state = int(reply[0]), self._seen(reply[1])
        if verdict == 1:
            return RedisCircuitBreakerTicket(self, None, "-1", math.inf)
        if verdict == 2:
            if _text(reply[2]) == "-1":
                return RedisCircuitBreakerTicket(self, token, "-1", math.inf)
            deadline = trio.current_time() + _seconds(reply[3])
            return RedisCircuitBreakerTicket(self, token, _text(reply[2]), deadline)
        retry_after = max(0.0, _seconds(reply[2]))
        error = CircuitBreakerOpenError(state=state, retry_after=retry_after)
        error.name = self._name
        message = "Circuit breaker is OPEN"
        if state is CircuitState.HALF_OPEN:  # worded as the resilient client does
            message += " (half-open, the probe is out)"
        if state is CircuitState.OPEN or retry_after > 0:
            message += f"; next probe allowed in {retry_after:.3f}s"
        error.args = (f"{message} (breaker {self._name!r})",)
        raise error

    async def _settle(
        self, ticket: RedisCircuitBreakerTicket, exc: BaseException | None
    ) -> None:
        if exc is None:
            outcome = "success"
        elif is_cancellation(exc) or (self._ignores is not None and self._ignores(exc)):
            outcome = "ignore"
        elif self._counts(exc):
            outcome = "failure"
        else:
            outcome = "success"
        if outcome == "ignore" and ticket._token is None:
            return  # nothing to count, no probe slot to free
        try:
            await self._record(
                outcome, ticket._token or "", ticket._lapses, shield=True
            )
        except RedisUnavailableError as error:
            if exc is None:
                raise
            exc.add_note(f"its outcome was not recorded on {self!r}: {error}")

    async def __aenter__(self) -> RedisCircuitBreaker:
        ticket = await self.admit()
        self._entered.setdefault(trio.lowlevel.current_task(), []).append(ticket)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task = trio.lowlevel.current_task()
        stack = self._entered[task]
        ticket = stack.pop()
        if not stack:
            del self._entered[task]
        await ticket.settle(exc)

    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]:
        """Guard every call of the async function ``fn`` with this breaker."""
        check_async_callable("RedisCircuitBreaker", fn)

        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            ticket = await self.admit()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                await ticket.settle(exc)
                raise
            await ticket.settle()
            return result

        return guarded


class RedisCircuitBreakerTicket:
    """One call admitted by a `RedisCircuitBreaker`, from `RedisCircuitBreaker.admit`.

    Settle it once with the call's outcome, from wherever the call ended.
    """

    __slots__ = ("_breaker", "_deadline", "_lapses", "_settled", "_token")

    def __init__(
        self,
        breaker: RedisCircuitBreaker,
        token: str | None,
        lapses: str,
        deadline: float,
    ) -> None:
        self._breaker = breaker
        self._token = token  # None: not a probe
        self._lapses = lapses  # the claim's end on the Redis clock, "-1": never
        self._deadline = deadline
        self._settled = False

    def __repr__(self) -> str:
        probe = "" if self._token is None else " probe"
        done = " settled" if self._settled else ""
        return f"<RedisCircuitBreakerTicket{probe}{done}>"

    @property
    def is_probe(self) -> bool:
        """Whether this call was admitted as the half-open probe."""
        return self._token is not None

    @property
    def deadline(self) -> float:
        """The trio time (roughly: it is the Redis clock's, seen through one round
        trip) at which a probe's claim lapses and its outcome stops counting;
        ``math.inf`` for a call admitted while CLOSED or a probe without a lapse."""
        return self._deadline

    async def settle(self, exc: BaseException | None = None) -> None:
        """Record the call's outcome: None for a success, else what it raised.

        One round trip, shielded from cancellation for at most `SETTLE_TIMEOUT`
        seconds; none for a non-probe call whose outcome counts as nothing.
        Settling twice raises `RuntimeError`.
        """
        if self._settled:
            raise RuntimeError("this RedisCircuitBreakerTicket is already settled")
        self._settled = True
        await self._breaker._settle(self, exc)
