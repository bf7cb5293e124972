"""A retry budget (Finagle's, also Envoy's retry budgets): retries as a share of
recent first attempts, so that a fleet of clients cannot multiply an outage.

Every first attempt deposits ``ratio`` of a retry; every retry withdraws one; both
are remembered for ``window`` seconds of trio time, in ten buckets of a tenth of it
each (`BucketedSums`: a bucket's counts leave the window together). A retry is
allowed while::

    min_per_second * window + ratio * first_attempts - retries  >=  1

counting the first attempts and retries of the last ``window`` seconds. So over any
window the retries are at most ``ratio`` of its first attempts plus a floor of
``min_per_second * window`` (what lets a quiet client retry at all). The defaults
(0.2, 10/s, 10 s): 1,000 calls during a total outage within 10 s make at most
1,000 + 0.2 * 1,000 + 100 = 1,300 attempts, however many each call may make.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import trio

from ._buckets import BucketedSums
from ._runbound import RunBound, current_run
from ._validation import check_number

_BUCKETS = 10


@attrs.frozen
class RetryBudgetStatistics:
    """A snapshot of a `RetryBudget`: totals since it was made (or last bound to
    a new ``trio.run``) and the window's balance."""

    first_attempts: int
    retries: int
    refused: int
    """Retries the budget did not allow."""
    balance: float | None
    """Retries it would allow now, fractions included; None outside a run."""


class RetryBudget(RunBound):
    """``ratio`` of the last ``window`` seconds' first attempts, plus
    ``min_per_second`` a second, may be retried (see the module docstring).

    `deposit` for each first attempt, `try_withdraw` before each retry: it returns
    False, and counts a refusal, when the budget has no whole retry left. Shared
    by every call of one client; bound to one ``trio.run`` at a time like the
    breaker (in a new run it starts empty).
    """

    __slots__ = (
        "_first_attempts",
        "_recent",
        "_refused",
        "_retries",
        "min_per_second",
        "on_refused",
        "ratio",
        "window",
    )

    def __init__(
        self,
        ratio: float = 0.2,
        min_per_second: float = 10.0,
        window: float = 10.0,
        *,
        on_refused: Callable[[], object] | None = None,
    ) -> None:
        self.ratio = check_number("ratio", ratio, at_least=0)
        self.min_per_second = check_number("min_per_second", min_per_second, at_least=0)
        self.window = check_number("window", window, above=0)
        self.on_refused = on_refused
        """Called on each refusal (a metric, say)."""
        self._run = None
        self._start_run()

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio:g}, min_per_second="
            f"{self.min_per_second:g}, window={self.window:g})"
        )

    def _start_run(self) -> None:
        # The window's first attempts and retries.
        self._recent = BucketedSums(self.window / _BUCKETS, _BUCKETS, fields=2)
        self._first_attempts = 0
        self._retries = 0
        self._refused = 0

    def _balance(self, now: float) -> float:
        first_attempts, retries = self._recent.sums(now)
        reserve = self.min_per_second * self.window
        return reserve + self.ratio * first_attempts - retries

    def deposit(self) -> None:
        """A first attempt is being made."""
        if current_run() is not self._run:
            self._enter_run()
        self._recent.add(trio.current_time(), 1, 0)
        self._first_attempts += 1

    def try_withdraw(self) -> bool:
        """Whether a retry may be made now; if so it is counted."""
        if current_run() is not self._run:
            self._enter_run()
        now = trio.current_time()
        if self._balance(now) < 1:
            self._refused += 1
            if self.on_refused is not None:
                self.on_refused()
            return False
        self._recent.add(now, 0, 1)
        self._retries += 1
        return True

    def statistics(self) -> RetryBudgetStatistics:
        """The totals, and the balance now (the whole floor in a run that has not
        used it yet; None outside a run, which has no clock)."""
        run = current_run()
        balance: float | None = None
        if run is not None and run is not self._run:
            balance = self.min_per_second * self.window
        elif run is not None:
            balance = self._balance(trio.current_time())
        return RetryBudgetStatistics(
            first_attempts=self._first_attempts,
            retries=self._retries,
            refused=self._refused,
            balance=balance,
        )
