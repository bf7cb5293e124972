"""The request journal: what clients actually sent, for tests to assert on.

Every request the server sees is recorded once it ends (method, path, query, request
id, scope, status, outcome, duration), in a ring buffer of ``journal_size`` entries:
the oldest entry is dropped first, so memory stays bounded however long the server
runs. ``at`` is the server's clock as Unix seconds: trio time plus one wall-clock
offset taken when the first entry of a `trio.run` is recorded, so the gaps between a
client's attempts are exact (and exact on virtual time in tests). Each run's clock
has its own origin, so an app served again in another run takes a new offset.

The scope of a request is its ``X-Fault-Scope`` header: two tests sharing a server
each read and clear only their own entries.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs
import trio

from .._runbound import RunBound, current_run
from .._validation import check_int


@attrs.frozen(kw_only=True)
class JournalEntry:
    """One finished request, as ``GET /requests`` serves it."""

    at: float
    """When the request arrived, as Unix seconds on the server's clock."""
    method: str
    path: str
    query: str
    request_id: str
    scope: str | None
    status: int | None
    """The status answered; None when no response was sent (a reset or close)."""
    outcome: str
    fault: str | None = None
    """The id of the fault rule that matched, if any."""
    duration_ms: float

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _arrival(entry: JournalEntry) -> float:
    return entry.at


class RequestJournal(RunBound):
    """A bounded, scoped record of finished requests (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self._run = None
        self._entries: deque[JournalEntry] = deque(
            maxlen=check_int("size", size, minimum=1)
        )
        self._offset: float | None = None
        self.forward: Callable[[JournalEntry], None] | None = None
        """Where `record` sends entries instead of keeping them (the Redis
        journal's queue, with a state URL); None: kept here."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """The most entries kept."""
        maxlen = self._entries.maxlen
        assert maxlen is not None
        return maxlen

    def wall_time(self, trio_time: float) -> float:
        """``trio_time`` as Unix seconds, with one offset for the journal's life."""
        if current_run() is not self._run:
            self._enter_run()
        if self._offset is None:
            self._offset = time.time() - trio.current_time()
        return trio_time + self._offset

    def _start_run(self) -> None:
        self._offset = None  # the entries, already in Unix seconds, stay

    def record(self, entry: JournalEntry) -> None:
        """Add ``entry``, dropping the oldest one when full (or hand it to
        `forward`, synchronously, if set)."""
        if self.forward is not None:
            self.forward(entry)
            return
        self._entries.append(entry)

    def entries(
        self, scope: str | None = None, limit: int | None = None
    ) -> list[JournalEntry]:
        """The ``limit`` entries that finished last (all if None), in the order the
        requests arrived (``at``); only those of ``scope`` if given.

        Entries are recorded as requests end, so a request that took long (a hung
        attempt, say) is recorded after a later one; sorting by arrival puts a
        client's attempts back in the order it made them.
        """
        chosen: list[JournalEntry] = []
        for entry in reversed(self._entries):
            if limit is not None and len(chosen) >= limit:
                break
            if scope is None or entry.scope == scope:
                chosen.append(entry)
        chosen.reverse()
        chosen.sort(key=_arrival)  # stable: ties keep the order they ended in
        return chosen

    def clear(self, scope: str | None = None) -> None:
        """Forget every entry, or only those of ``scope``."""
        if scope is None:
            self._entries.clear()
            return
        kept = [entry for entry in self._entries if entry.scope != scope]
        self._entries.clear()
        self._entries.extend(kept)
