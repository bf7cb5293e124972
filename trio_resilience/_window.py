"""The sliding windows of a `CircuitBreaker` in rate mode (resilience4j's).

A window remembers recent call outcomes, each a failure or not and slow or not, and
answers the failure rate and the slow-call rate over them in O(1):

* ``kind="count"``: the last ``size`` calls, in a ring;
* ``kind="time"``: the calls of the last ``size`` seconds of trio time, in buckets
  of one second each (a bucket leaves the window whole, as in resilience4j).

Rates are percentages; None until the window holds ``minimum_number_of_calls``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import attrs

from ._buckets import BucketedSums
from ._validation import check_int, check_number


def _check_kind(_self: object, _attr: object, value: object) -> None:
    if value not in ("count", "time"):
        raise ValueError(f"kind must be 'count' or 'time', not {value!r}")


def _percent(name: str) -> Callable[[Any, Any, float], None]:
    def check(_self: Any, _attr: Any, value: float) -> None:
        if check_number(name, value, above=0) > 100:
            raise ValueError(f"{name} must be <= 100")

    return check


@attrs.frozen
class SlidingWindow:
    """Open the breaker on rates over a window instead of a failure streak.

    While CLOSED, after each call the breaker computes, over the window, the
    share of calls that failed and the share that took at least
    ``slow_call_duration`` seconds (None: no call is slow); once the window holds
    at least ``minimum_number_of_calls``, either share at or above its threshold
    (percent) opens it. In HALF_OPEN the breaker's ``half_open_max_calls`` probes
    decide together: once all have settled, the same thresholds over them open
    it again or close it. Closing starts an empty window. resilience4j's
    semantics and defaults.
    """

    size: int = attrs.field(
        default=100, validator=lambda _s, _a, v: check_int("size", v, minimum=1)
    )
    kind: Literal["count", "time"] = attrs.field(default="count", validator=_check_kind)
    failure_rate_threshold: float = attrs.field(
        default=50.0,
        validator=_percent("failure_rate_threshold"),
    )
    slow_call_duration: float | None = attrs.field(
        default=None,
        validator=lambda _s, _a, v: (
            v is None or check_number("slow_call_duration", v, above=0)
        ),
    )
    slow_call_rate_threshold: float = attrs.field(
        default=100.0,
        validator=_percent("slow_call_rate_threshold"),
    )
    minimum_number_of_calls: int = attrs.field(
        default=100,
        validator=lambda _s, _a, v: check_int("minimum_number_of_calls", v, minimum=1),
    )

    def counts(self) -> WindowCounts:
        """An empty window of this shape."""
        return WindowCounts(self)

    def trips(self, counts: Outcomes, minimum: int | None = None) -> bool:
        """Whether ``counts``, at least ``minimum`` calls (default
        ``minimum_number_of_calls``), cross a threshold."""
        least = self.minimum_number_of_calls if minimum is None else minimum
        if counts.calls < max(1, least):
            return False
        return (
            100 * counts.failures / counts.calls >= self.failure_rate_threshold
            or 100 * counts.slow / counts.calls >= self.slow_call_rate_threshold
        )


@attrs.define
class Outcomes:
    """Calls, failures and slow calls, summed."""

    calls: int = 0
    failures: int = 0
    slow: int = 0

    def add(self, failed: bool, slow: bool, sign: int = 1) -> None:
        self.calls += sign
        self.failures += sign * failed
        self.slow += sign * slow

    def rates(self, minimum: int) -> tuple[float | None, float | None]:
        """Failure and slow-call rates in percent; None below ``minimum`` calls."""
        if self.calls < minimum or self.calls == 0:
            return None, None
        return 100 * self.failures / self.calls, 100 * self.slow / self.calls


class WindowCounts:
    """The window's outcomes: `record` one, `outcomes` at a time (trio time)."""

    __slots__ = ("_recent", "_ring", "_shape", "_sums")

    def __init__(self, shape: SlidingWindow) -> None:
        self._shape = shape
        self._sums = Outcomes()  # the count window's
        self._ring: deque[tuple[bool, bool]] = deque()
        # The time window's calls, failures and slow calls, in 1 s buckets.
        self._recent = BucketedSums(1.0, shape.size, fields=3)

    def record(self, now: float, failed: bool, slow: bool) -> None:
        if self._shape.kind == "time":
            self._recent.add(now, 1, failed, slow)
            return
        self._sums.add(failed, slow)
        self._ring.append((failed, slow))
        if len(self._ring) > self._shape.size:
            self._sums.add(*self._ring.popleft(), sign=-1)

    def outcomes(self, now: float) -> Outcomes:
        if self._shape.kind == "time":
            return Outcomes(*self._recent.sums(now))
        return self._sums
