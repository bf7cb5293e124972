"""Idempotent answers by request id: an LRU + TTL cache and single-flight creation."""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

import attrs
import trio

from .._validation import check_int, check_number

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def fingerprint(value: object) -> str:
    """A digest of a JSON value that ignores key order and spacing.

    Stored beside an idempotency key, it tells a true retry (the same request again)
    from a reuse of the key for a different request, which must be refused.
    """
    canonical = json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@attrs.frozen
class _Entry(Generic[V]):
    value: V
    expires_at: float


class TTLCache(Generic[K, V]):
    """At most ``max_size`` entries, each forgotten ``ttl`` seconds after it was set.

    Eviction is least-recently-used first; expiry is on trio time and lazy (an
    expired entry is dropped when it is looked up or when room is needed), so the
    cache owns no task. Reads refresh recency, not the time to live.
    """

    def __init__(self, max_size: int, ttl: float) -> None:
        self._max_size = check_int("max_size", max_size, minimum=1)
        self._ttl = check_number("ttl", ttl, above=0)
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The live value under ``key``, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if trio.current_time() >= entry.expires_at:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.value

    def set(self, key: K, value: V) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, evicting if full."""
        now = trio.current_time()
        self._entries[key] = _Entry(value, now + self._ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_size:
            self._entries.popitem(last=False)


@attrs.define(eq=False)
class _Flight(Generic[V]):
    """One running creation; waiters read its value here, not from the cache."""

    done: trio.Event = attrs.field(factory=trio.Event)
    succeeded: bool = False
    value: V | None = None


class SingleFlight(Generic[K, V]):
    """Compute each key's value once, however many callers ask at the same time.

    The first caller for a key runs ``create``; concurrent callers wait for it and
    get the same value, handed to them directly (so an eviction from a small cache
    in the meantime cannot make them create again). Values are remembered in a
    `TTLCache` for later callers. If the running ``create`` fails or is cancelled,
    nothing is stored and one of the waiters runs its own ``create`` instead (the
    others wait for that one), so a failed attempt never poisons the key.
    """

    def __init__(self, cache: TTLCache[K, V]) -> None:
        self._cache = cache
        self._in_flight: dict[K, _Flight[V]] = {}

    @property
    def cache(self) -> TTLCache[K, V]:
        return self._cache

    async def get_or_create(
        self, key: K, create: Callable[[], Awaitable[V]]
    ) -> tuple[V, bool]:
        """The value for ``key`` and whether it was an earlier caller's (a replay)."""
        while True:
            value = self._cache.get(key)
            if value is not None:
                await trio.lowlevel.checkpoint()
                return value, True
            flight = self._in_flight.get(key)
            if flight is None:
                break
            await flight.done.wait()
            if flight.succeeded:
                return cast(V, flight.value), True
        flight = self._in_flight[key] = _Flight()
        try:
            value = await create()
            self._cache.set(key, value)
            flight.value, flight.succeeded = value, True
        finally:
            del self._in_flight[key]
            flight.done.set()
        return value, False
