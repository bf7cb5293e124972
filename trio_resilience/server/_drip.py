"""Sending a body slowly: the one schedule ``/drip`` and the drip fault follow."""

from __future__ import annotations

from collections.abc import AsyncIterator

import trio


def drip_slices(numbytes: int, duration: float) -> list[int]:
    """``numbytes`` cut into equal slices (differing by one byte at most), at most
    one per millisecond of ``duration``, and at least one."""
    count = max(1, min(numbytes, int(duration * 1000)))
    size, larger = divmod(numbytes, count)
    return [size + 1 if i < larger else size for i in range(count)]


async def drip_body(body: bytes, duration: float) -> AsyncIterator[bytes]:
    """``body`` in `drip_slices` pieces at equal intervals from now, the last one
    ``duration`` seconds from now (on trio's clock, so no drift builds up)."""
    slices = drip_slices(len(body), duration)
    interval = duration / len(slices)
    start = trio.current_time()
    offset = 0
    for index, size in enumerate(slices, 1):
        await trio.sleep_until(start + index * interval)
        yield body[offset : offset + size]
        offset += size
