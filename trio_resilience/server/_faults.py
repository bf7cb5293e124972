"""Failure injection: fail the next N requests, or every request for a while."""

from __future__ import annotations

import math

import attrs
import trio

MAX_FAIL_COUNT = 1_000_000
MAX_FAIL_SECONDS = 86_400.0


@attrs.frozen
class FailureStatus:
    """What `FailureInjector.status` reports, as served by ``GET /fail/status``."""

    count_remaining: int
    duration_remaining_seconds: float
    failing: bool
    requests_seen: int
    failures_injected: int


@attrs.define(eq=False)
class FailureInjector:
    """Decides, request by request, whether to fail on purpose.

    Two modes run side by side and either one fails a request: *count* fails the
    next N requests checked (each failure uses one up), *duration* fails every
    request until a moment on trio time. The count is used first, so a count set
    during a failing period still fails N requests of its own. Setting a mode
    replaces its previous value; `reset` clears both modes but keeps the totals.
    """

    _count: int = 0
    _until: float = -math.inf
    _requests_seen: int = 0
    _failures_injected: int = 0

    def fail_next(self, count: int) -> None:
        """Fail the next ``count`` requests (0 turns count mode off)."""
        if not 0 <= count <= MAX_FAIL_COUNT:
            raise ValueError(f"count must be between 0 and {MAX_FAIL_COUNT}")
        self._count = count

    def fail_for(self, seconds: float) -> None:
        """Fail every request for the next ``seconds`` (0 turns duration mode off)."""
        if not 0 <= seconds <= MAX_FAIL_SECONDS:
            raise ValueError(f"seconds must be between 0 and {MAX_FAIL_SECONDS:g}")
        self._until = trio.current_time() + seconds

    def reset(self) -> None:
        """Turn both modes off."""
        self._count = 0
        self._until = -math.inf

    def should_fail(self) -> bool:
        """Count one request and say whether it must fail."""
        self._requests_seen += 1
        if self._count > 0:
            self._count -= 1
        elif trio.current_time() >= self._until:
            return False
        self._failures_injected += 1
        return True

    def status(self) -> FailureStatus:
        remaining = max(0.0, self._until - trio.current_time())
        return FailureStatus(
            count_remaining=self._count,
            duration_remaining_seconds=remaining,
            failing=self._count > 0 or remaining > 0,
            requests_seen=self._requests_seen,
            failures_injected=self._failures_injected,
        )
