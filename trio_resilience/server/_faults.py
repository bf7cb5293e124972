"""The seed failure modes: fail the next N ``GET /msg``, or every one for a while."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import attrs

from ._fault_rules import FaultPlan, FaultRule, Match, StatusAction

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


INDUCED_FAILURE = {"detail": "Induced server failure"}
"""The body of an injected failure unless a rule gives its own."""
MESSAGE_ROUTE = Match(methods=frozenset({"GET"}), path="/msg")


def checked_count(count: int) -> int:
    """``count`` if it is a valid count mode budget, else ValueError."""
    if not 0 <= count <= MAX_FAIL_COUNT:
        raise ValueError(f"count must be between 0 and {MAX_FAIL_COUNT}")
    return count


def checked_seconds(seconds: float) -> float:
    """``seconds`` if it is a valid duration mode length, else ValueError."""
    if not 0 <= seconds <= MAX_FAIL_SECONDS:
        raise ValueError(f"seconds must be between 0 and {MAX_FAIL_SECONDS:g}")
    return seconds


def mode_rule(rule_id: str) -> FaultRule:
    """The rule of one ``/fail`` mode: ``GET /msg`` -> 500 Induced server failure."""
    return FaultRule(
        id=rule_id,
        match=MESSAGE_ROUTE,
        action=StatusAction(500, body=INDUCED_FAILURE),
        times=0,
        pinned=True,
    )


class FailureBackend(Protocol):
    """Where the ``/fail`` modes live: this process (`FailureInjector`) or Redis
    (`RedisFailureInjector`, shared by every worker)."""

    async def check(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> FaultRule | None:
        """The mode that fails this request, for a backend that decides outside
        the server's `FaultPlan` (None when its modes are rules of the plan)."""
        ...

    async def fail_next(self, count: int) -> None: ...
    async def fail_for(self, seconds: float) -> None: ...
    async def reset(self) -> None: ...
    async def status(self) -> FailureStatus: ...


class FailureInjector:
    """The ``/fail`` modes: fail ``GET /msg`` with ``500 {"detail": "Induced server
    failure"}``, for the next N requests or for a while.

    Two modes run side by side and either one fails a request: *count* fails the
    next N requests checked (each failure uses one up), *duration* fails every
    request until a moment on trio time. The count is used first, so a count set
    during a failing period still fails N requests of its own. Setting a mode
    replaces its previous value; `reset` clears both modes but keeps the totals.

    Each mode is a pinned rule of the server's `FaultPlan` (ids ``fail-count`` and
    ``fail-duration``), checked before every other rule, so the requests they fail
    are decided, counted and journaled like any rule's.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self._plan = plan
        self._count = plan.add(mode_rule("fail-count"))
        self._duration = plan.add(mode_rule("fail-duration"))

    async def check(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> FaultRule | None:
        """None: these modes are pinned rules of the plan, which checks them."""
        return None

    async def fail_next(self, count: int) -> None:
        """Fail the next ``count`` requests (0 turns count mode off)."""
        self._plan.rearm(self._count, checked_count(count), None)

    async def fail_for(self, seconds: float) -> None:
        """Fail every request for the next ``seconds`` (0 turns duration mode off)."""
        self._plan.rearm(self._duration, None, checked_seconds(seconds))

    async def reset(self) -> None:
        """Turn both modes off."""
        self._plan.remove(self._count.id)
        self._plan.remove(self._duration.id)

    async def status(self) -> FailureStatus:
        now = self._plan.now()
        count = self._count.remaining or 0
        remaining = 0.0
        if self._duration.live(now):
            remaining = max(0.0, self._duration.expires_at - now)
        return FailureStatus(
            count_remaining=count,
            duration_remaining_seconds=remaining,
            failing=count > 0 or remaining > 0,
            requests_seen=self._count.matched,
            failures_injected=self._count.fired + self._duration.fired,
        )
