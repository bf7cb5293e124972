"""Sums over a sliding window of trio time, kept in buckets.

The retry budget and the breaker's time window both need "how many of each kind in
the last N seconds" in O(1): the counts go into buckets ``width`` seconds wide, the
last ``count`` buckets make the window, and a bucket leaves it whole (the window
ends between ``(count - 1) * width`` and ``count * width`` seconds back).
"""

from __future__ import annotations

import math
from collections import deque


class BucketedSums:
    """Running sums of ``fields`` counters over the last ``count`` buckets."""

    __slots__ = ("_buckets", "_count", "_fields", "_sums", "_width")

    def __init__(self, width: float, count: int, fields: int) -> None:
        self._width = width
        self._count = count
        self._fields = fields
        self._buckets: deque[tuple[int, list[int]]] = deque()
        self._sums = [0] * fields

    def add(self, now: float, *deltas: int) -> None:
        """Add ``deltas`` (one per field) in the bucket of trio time ``now``."""
        number = math.floor(now / self._width)
        self._evict(number)
        buckets = self._buckets
        if not buckets or buckets[-1][0] != number:
            buckets.append((number, [0] * self._fields))
        counts, sums = buckets[-1][1], self._sums
        for field, delta in enumerate(deltas):
            counts[field] += delta
            sums[field] += delta

    def sums(self, now: float) -> list[int]:
        """The window's sums at trio time ``now`` (do not change the list)."""
        self._evict(math.floor(now / self._width))
        return self._sums

    def _evict(self, number: int) -> None:
        buckets, sums = self._buckets, self._sums
        while buckets and buckets[0][0] <= number - self._count:
            _, old = buckets.popleft()
            for field, value in enumerate(old):
                sums[field] -= value
