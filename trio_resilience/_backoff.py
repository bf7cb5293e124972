"""The delay sequence between attempts: exponential, capped, optionally jittered."""

from __future__ import annotations

import random

import attrs

from ._validation import check_int, check_number


@attrs.frozen
class Backoff:
    """How long to wait before attempt ``n + 1`` after attempt ``n`` failed.

    Without jitter the delay after attempt ``n`` (``n >= 1``) is exactly::

        min(maximum, initial * multiplier ** (n - 1))

    With jitter ("full jitter") the delay is drawn uniformly from
    ``[0, min(maximum, initial * multiplier ** (n - 1))]``, so it never exceeds
    ``maximum``. Full jitter spreads out the retries of many clients that failed
    together, so a recovering server is not hit by synchronized waves.

    A `Backoff` only computes delays; `retry` and `retry_context` do the waiting.

    >>> Backoff(initial=0.5, maximum=4.0, jitter=False).delay(3)
    2.0
    """

    initial: float = 0.1
    maximum: float = 5.0
    multiplier: float = 2.0
    jitter: bool = True

    def __attrs_post_init__(self) -> None:
        initial = check_number("initial", self.initial, at_least=0)
        maximum = check_number("maximum", self.maximum, at_least=0)
        check_number("multiplier", self.multiplier, at_least=1)
        if not isinstance(self.jitter, bool):
            raise TypeError(f"jitter must be a bool, not {type(self.jitter).__name__}")
        if maximum < initial:
            raise ValueError("maximum must be >= initial")

    def delay(self, attempt: int) -> float:
        """The seconds to wait after failed attempt number ``attempt`` (1-based)."""
        check_int("attempt", attempt, minimum=1)
        try:
            raw = self.initial * self.multiplier ** (attempt - 1)
        except OverflowError:  # the cap was reached long before
            raw = self.maximum
        capped = float(min(self.maximum, raw))
        if self.jitter:
            return random.uniform(0.0, capped)
        return capped
