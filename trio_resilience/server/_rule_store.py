"""The one interface the ``/faults`` and ``/requests`` routes call, whichever
backend holds the state: this process (the classes here) or Redis
(`RedisFaultRules` in ``_redis_plan``, `RedisJournal` in ``_redis_journal``).

Rules are served as their ``GET /faults`` JSON (`FaultRule.to_json`), since in
Redis a rule's counts live apart from its definition.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._fault_rules import FaultPlan, FaultRule
from ._journal import JournalEntry, RequestJournal


class FaultRules(Protocol):
    """Where the fault rules live, as the routes see them."""

    async def add(self, rule: FaultRule) -> dict[str, Any]:
        """Store ``rule`` as the newest one; its view. `TooManyRules` when full."""
        ...

    async def list(self, scope: str | None = None) -> list[dict[str, Any]]:
        """Every rule's view, oldest first (or only those of ``scope``)."""
        ...

    async def get(self, rule_id: str) -> dict[str, Any] | None: ...

    async def remove(self, rule_id: str) -> bool:
        """Delete one rule; False if unknown."""
        ...

    async def clear(self, scope: str | None = None) -> None: ...


class MemoryFaultRules:
    """The rules of this process: its `FaultPlan`."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan

    async def add(self, rule: FaultRule) -> dict[str, Any]:
        self.plan.add(rule)
        return rule.to_json(self.plan.now())

    async def list(self, scope: str | None = None) -> list[dict[str, Any]]:
        now = self.plan.now()
        return [rule.to_json(now) for rule in self.plan.rules(scope)]

    async def get(self, rule_id: str) -> dict[str, Any] | None:
        now = self.plan.now()
        rule = self.plan.get(rule_id)
        if rule is None or not rule.listed(now):
            return None
        return rule.to_json(now)

    async def remove(self, rule_id: str) -> bool:
        return self.plan.remove(rule_id)

    async def clear(self, scope: str | None = None) -> None:
        self.plan.clear(scope)


class JournalStore(Protocol):
    """Where the request journal is read and cleared, as the routes see it."""

    async def entries(
        self, scope: str | None = None, limit: int | None = None
    ) -> list[JournalEntry]: ...

    async def clear(self, scope: str | None = None) -> None: ...


class MemoryJournalStore:
    """The journal of this process."""

    def __init__(self, journal: RequestJournal) -> None:
        self.journal = journal

    async def entries(
        self, scope: str | None = None, limit: int | None = None
    ) -> list[JournalEntry]:
        return self.journal.entries(scope, limit)

    async def clear(self, scope: str | None = None) -> None:
        self.journal.clear(scope)
