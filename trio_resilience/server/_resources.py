"""The CRUD demo's in-memory collections."""

from __future__ import annotations

import itertools
from typing import Any

from ._idempotency import TTLCache


class ResourceStore:
    """One resource collection: records by integer id, and POST keys to ids."""

    def __init__(self, keys: TTLCache[str, int]) -> None:
        self.records: dict[int, dict[str, Any]] = {}
        self.keys = keys
        self._ids = itertools.count(1)

    def create(self, data: dict[str, Any]) -> dict[str, Any]:
        record = {"id": next(self._ids), **data}
        self.records[record["id"]] = record
        return record
