"""The CRUD demo's collections: bounded, paged, idempotent by key.

`ResourceBackend` is what the routes need of a collection; `ResourceStore` keeps
one in this process's memory, `RedisResourceStore` (``_redis_resources``) in Redis
for every worker process. Both answer the same way, and raise the same errors.

A `ResourceStore` holds at most ``max_items`` records under increasing integer ids,
in id order, so a page is a slice found by bisection: serving ``limit`` records
costs O(log n + limit) whatever the collection's size, and never copies it.

Idempotency keys live in the store beside the records they created, not in a
cache shared with other answers: a key replays its record for as long as that
record exists, however many other keys come and go. When the record is deleted
its key is kept ``key_retention`` seconds more (a retry then learns the record is
gone instead of creating it again), at most ``max_items`` such keys, the oldest
forgotten first. So a store holds at most ``max_items`` records, as many live keys,
and as many keys of deleted records.

Each method checkpoints once, on entry, and then runs to its end without another:
a lookup and the creation that follows it happen without a checkpoint in between,
so concurrent requests with one key cannot both create.
"""

from __future__ import annotations

import bisect
import itertools
from collections import OrderedDict
from typing import Any, Protocol

import attrs
import trio

from .._validation import check_int, check_number


class ResourceStoreError(Exception):
    """Base of the errors a `ResourceBackend` raises instead of creating a record."""


class StoreFullError(ResourceStoreError):
    """The store holds ``max_items`` records already; delete some first."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        super().__init__(f"the store is full ({max_items} records)")


class KeyReusedError(ResourceStoreError):
    """An idempotency key already used for a request with another fingerprint.

    Replaying the key's record would answer a request the store never saw.
    """

    def __init__(self, key: str, record_id: int) -> None:
        self.key = key
        self.record_id = record_id
        super().__init__(
            f"idempotency key {key!r} was already used for another request "
            f"(record {record_id})"
        )


class KeyGoneError(ResourceStoreError):
    """The record this idempotency key created has been deleted.

    Raised while the deleted record's key is retained (``key_retention``), so a
    late retry of a create does not bring a deleted record back.
    """

    def __init__(self, key: str, record_id: int) -> None:
        self.key = key
        self.record_id = record_id
        super().__init__(
            f"the record idempotency key {key!r} created ({record_id}) was deleted"
        )


@attrs.frozen(kw_only=True)
class Created:
    """What `ResourceBackend.create` answered: the record, and whether it already
    existed (the key's replay) rather than being created now."""

    record: dict[str, Any]
    replayed: bool


@attrs.frozen(kw_only=True)
class Page:
    """Up to ``limit`` records in id order, and the cursor of the next page."""

    records: list[dict[str, Any]]
    next_after: int | None
    """The id of the last record served when more follow; None on the last page."""


@attrs.frozen(kw_only=True)
class ResourceStoreStatistics:
    """What a `ResourceBackend` holds, from `ResourceBackend.statistics`."""

    records: int
    max_items: int
    keys: int
    """Idempotency keys of records that exist."""
    deleted_keys: int
    """Idempotency keys of deleted records, still retained."""


class ResourceBackend(Protocol):
    """One collection of records by integer id, at most ``max_items`` of them: what
    the CRUD routes use. `ResourceStore` is the in-memory one, `RedisResourceStore`
    the one every worker process shares.

    Records are ``{"id": ..., **data}``; ids increase, and pages list records in id
    order. A create with an idempotency ``key`` replays the record that key
    created while it exists (`KeyReusedError` if the ``fingerprint`` differs), then
    raises `KeyGoneError` for ``key_retention`` seconds once it is deleted; a new
    record past ``max_items`` raises `StoreFullError`.
    """

    @property
    def max_items(self) -> int: ...

    async def get(self, record_id: int) -> dict[str, Any] | None:
        """The record with this id, or None."""
        ...

    async def create(
        self,
        data: dict[str, Any],
        *,
        key: str | None = None,
        fingerprint: str | None = None,
    ) -> Created:
        """A new record, or the one ``key`` created before (``replayed``)."""
        ...

    async def replace(
        self, record_id: int, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Replace a record's data, keeping its id, place and key; None if absent."""
        ...

    async def delete(self, record_id: int) -> bool:
        """Delete a record (its key is retained as deleted); False if absent."""
        ...

    async def page(self, *, after: int | None, limit: int) -> Page:
        """The first ``limit`` records with an id above ``after``, in id order."""
        ...

    async def statistics(self) -> ResourceStoreStatistics:
        """How many records and keys the store holds now."""
        ...


@attrs.frozen
class _Key:
    record_id: int
    fingerprint: str | None


@attrs.frozen
class _DeletedKey:
    record_id: int
    fingerprint: str | None
    forget_at: float


class ResourceStore:
    """The in-memory `ResourceBackend`: one collection of records by integer id, at
    most ``max_items`` of them.

    It is not a database: records live in this process's memory, and only for as
    long as the app does, so several worker processes cannot share it (use
    `RedisResourceStore`). ``key_retention`` is the seconds (trio time) the key of
    a deleted record is still known.

    ::

        store = ResourceStore(max_items=10_000, key_retention=86_400)
        created = await store.create({"name": "pen"}, key="k-1", fingerprint="f")
        (await store.create({"name": "pen"}, key="k-1", fingerprint="f")).replayed
        # True
    """

    def __init__(self, *, max_items: int, key_retention: float) -> None:
        self._max_items = check_int("max_items", max_items, minimum=1)
        self._key_retention = check_number("key_retention", key_retention, above=0)
        self._records: dict[int, dict[str, Any]] = {}
        self._ids: list[int] = []  # ascending: new ids are always the largest
        self._keys: dict[str, _Key] = {}
        self._key_of: dict[int, str] = {}
        self._deleted_keys: OrderedDict[str, _DeletedKey] = OrderedDict()
        self._next_id = itertools.count(1)

    @property
    def max_items(self) -> int:
        return self._max_items

    async def get(self, record_id: int) -> dict[str, Any] | None:
        """The record with this id, or None."""
        await trio.lowlevel.checkpoint()
        return self._records.get(record_id)

    async def create(
        self,
        data: dict[str, Any],
        *,
        key: str | None = None,
        fingerprint: str | None = None,
    ) -> Created:
        """A new record ``{"id": ..., **data}``, or the one ``key`` created before.

        With a ``key``, the record it created is returned again (``replayed``) as
        long as it exists, if ``fingerprint`` matches the one given then (None
        matches anything): a different one raises `KeyReusedError`. A key whose
        record was deleted raises `KeyGoneError` while it is retained. A new record
        when ``max_items`` exist raises `StoreFullError`; replays never do.
        """
        await trio.lowlevel.checkpoint()  # the only one: nothing awaits below
        if key is not None:
            replay = self._replay(key, fingerprint)
            if replay is not None:
                return Created(record=replay, replayed=True)
        if len(self._records) >= self._max_items:
            raise StoreFullError(self._max_items)
        record_id = next(self._next_id)
        record = {"id": record_id, **data}
        self._records[record_id] = record
        self._ids.append(record_id)
        if key is not None:
            self._keys[key] = _Key(record_id, fingerprint)
            self._key_of[record_id] = key
        return Created(record=record, replayed=False)

    def _replay(self, key: str, fingerprint: str | None) -> dict[str, Any] | None:
        known = self._keys.get(key)
        if known is not None:
            _check_fingerprint(key, known.record_id, known.fingerprint, fingerprint)
            return self._records[known.record_id]
        self._forget_expired_keys()
        deleted = self._deleted_keys.get(key)
        if deleted is None:
            return None
        _check_fingerprint(key, deleted.record_id, deleted.fingerprint, fingerprint)
        raise KeyGoneError(key, deleted.record_id)

    async def replace(
        self, record_id: int, data: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Replace a record's data, keeping its id, place and key; None if absent."""
        await trio.lowlevel.checkpoint()
        if record_id not in self._records:
            return None
        record = self._records[record_id] = {"id": record_id, **data}
        return record

    async def delete(self, record_id: int) -> bool:
        """Delete a record (its key is retained as deleted); False if absent."""
        await trio.lowlevel.checkpoint()
        if self._records.pop(record_id, None) is None:
            return False
        del self._ids[bisect.bisect_left(self._ids, record_id)]
        key = self._key_of.pop(record_id, None)
        if key is not None:
            known = self._keys.pop(key)
            self._forget_expired_keys()
            self._deleted_keys[key] = _DeletedKey(
                record_id,
                known.fingerprint,
                trio.current_time() + self._key_retention,
            )
            while len(self._deleted_keys) > self._max_items:
                self._deleted_keys.popitem(last=False)
        return True

    async def page(self, *, after: int | None, limit: int) -> Page:
        """The first ``limit`` records with an id above ``after`` (None: from the
        start), in id order."""
        check_int("limit", limit, minimum=1)
        await trio.lowlevel.checkpoint()
        start = 0 if after is None else bisect.bisect_right(self._ids, after)
        ids = self._ids[start : start + limit]
        more = start + limit < len(self._ids)
        return Page(
            records=[self._records[record_id] for record_id in ids],
            next_after=ids[-1] if more else None,
        )

    async def statistics(self) -> ResourceStoreStatistics:
        """How many records and keys the store holds now."""
        await trio.lowlevel.checkpoint()
        self._forget_expired_keys()
        return ResourceStoreStatistics(
            records=len(self._records),
            max_items=self._max_items,
            keys=len(self._keys),
            deleted_keys=len(self._deleted_keys),
        )

    def _forget_expired_keys(self) -> None:
        # Deleted keys are in deletion order, so the expired ones come first.
        now = trio.current_time()
        while self._deleted_keys:
            oldest = next(iter(self._deleted_keys.values()))
            if oldest.forget_at > now:
                break
            self._deleted_keys.popitem(last=False)


def _check_fingerprint(
    key: str, record_id: int, stored: str | None, given: str | None
) -> None:
    if stored is not None and given is not None and stored != given:
        raise KeyReusedError(key, record_id)
