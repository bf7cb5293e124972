"""The per-app runtime state that the routes share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

import attrs
import trio
from quart import current_app
from quart_trio import QuartTrio

from ..jobs import JobBackend, JobQueue
from ._fault_rules import FaultPlan, FaultRule
from ._faults import FailureBackend, FailureInjector
from ._idempotency import SingleFlight, TTLCache
from ._journal import RequestJournal
from ._resources import ResourceBackend
from ._rule_store import (
    FaultRules,
    JournalStore,
    MemoryFaultRules,
    MemoryJournalStore,
)
from ._settings import ServerSettings

if TYPE_CHECKING:
    from ..redis import RedisConnection
    from ._metrics import ServerMetrics
    from ._redis_journal import RedisJournal
    from ._redis_plan import RedisFaultRules


class IdempotentAnswers(Protocol):
    """The ``/msg`` answers by request id: `SingleFlight` in memory, or
    `RedisSingleFlight` shared by every worker."""

    async def get_or_create(
        self, key: str, create: Callable[[], Awaitable[str]]
    ) -> tuple[str, bool]: ...


@attrs.define(eq=False)
class ServerState:
    """What one running app holds: settings, failure injection, idempotent answers."""

    settings: ServerSettings
    plan: FaultPlan = attrs.field(init=False)
    """The fault rules (``/faults``), checked on every request outside the
    control routes; with a state URL, this worker's copy of the rules in Redis
    (its matching engine: budgets and counts are in Redis)."""
    rules: FaultRules = attrs.field(init=False)
    """The fault rules as the routes use them: ``plan`` itself, or in Redis."""
    faults: FailureBackend = attrs.field(init=False)
    """The ``/fail`` modes: two pinned rules of ``plan``, or in Redis."""
    messages: IdempotentAnswers = attrs.field(init=False)
    limiter: trio.CapacityLimiter = attrs.field(init=False)
    journal: RequestJournal = attrs.field(init=False)
    """Where requests are recorded (with a state URL it forwards them to
    ``journal_store``'s queue)."""
    journal_store: JournalStore = attrs.field(init=False)
    """The journal as the routes read and clear it: ``journal``, or in Redis."""
    redis_rules: RedisFaultRules | None = None
    redis_journal: RedisJournal | None = None
    resources: dict[str, ResourceBackend] = attrs.field(factory=dict)
    started_at: float = 0.0
    job_queue: JobQueue | None = None
    """The running in-memory job queue; set by the app while it serves without
    a state URL."""
    job_backend: JobBackend | None = None
    """The running job queue as the routes use it (in memory or in Redis); set
    by the app while it serves."""
    redis: RedisConnection | None = None
    """The state backend's connection while the app serves with a state URL."""
    metrics: ServerMetrics | None = None
    """The app's metrics (``GET /metrics``); None with ``metrics_enabled`` off."""
    background_failure: BaseException | None = None
    """The exception a background task of the serving app (the job queue, the
    state backend's connection) failed with; `serve_forever` then stops the
    server and raises it, so a supervisor replaces the process."""
    on_background_failure: Callable[[], None] | None = None
    """Called once a background task failed (`serve_forever` sets it)."""
    shutting_down: bool = False
    """Set once the server has been told to stop: from then on every response
    carries ``Connection: close`` and ends its connection."""

    def __attrs_post_init__(self) -> None:
        self.plan = FaultPlan(self.settings.max_fault_rules)
        self.faults = FailureInjector(self.plan)
        self.messages = SingleFlight(self.new_cache())
        self.limiter = trio.CapacityLimiter(self.settings.max_concurrency)
        self.journal = RequestJournal(self.settings.journal_size)
        self.rules = MemoryFaultRules(self.plan)
        self.journal_store = MemoryJournalStore(self.journal)

    def use_redis(self, redis: RedisConnection) -> None:
        """Move the shared state to Redis (the app does this as it starts)."""
        from ._redis_journal import RedisJournal
        from ._redis_plan import RedisFaultRules
        from ._redis_resources import RedisResourceStore
        from ._redis_state import RedisFailureInjector, RedisSingleFlight

        self.redis = redis
        modes = self.faults = RedisFailureInjector(redis)
        self.plan = FaultPlan(self.settings.max_fault_rules)  # no pinned modes
        self.rules = self.redis_rules = RedisFaultRules(redis, self.plan, modes=modes)
        self.journal_store = self.redis_journal = RedisJournal(
            redis, self.settings.journal_size
        )
        self.journal.forward = self.redis_journal.record
        self.messages = RedisSingleFlight(redis, ttl=self.settings.cache_ttl_seconds)
        for name in self.resources:
            self.resources[name] = RedisResourceStore(
                redis,
                name,
                max_items=self.settings.crud_max_items,
                key_retention=self.settings.crud_key_retention,
            )

    async def relay_state_events(self) -> None:
        """Run what the Redis backend needs in the background (until cancelled):
        the pub/sub relay that wakes waiters for idempotent answers, the one that
        keeps the local fault plan in step, and the journal's writer."""
        from ._redis_state import RedisSingleFlight, relay_completions

        async with trio.open_nursery() as nursery:
            if self.redis is not None and isinstance(self.messages, RedisSingleFlight):
                nursery.start_soon(relay_completions, self.redis, self.messages)
            if self.redis_rules is not None:
                nursery.start_soon(self.redis_rules.relay)
            if self.redis_journal is not None:
                nursery.start_soon(self.redis_journal.run)

    async def check_faults(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> FaultRule | None:
        """The rule that fires for a request: a ``/fail`` mode, then the plan's."""
        rule = await self.faults.check(method, path, headers)
        if rule is not None:
            return rule
        if self.redis_rules is not None:
            return await self.redis_rules.check(method, path, headers)
        return self.plan.check(method, path, headers)

    def new_cache(self) -> TTLCache[str, Any]:
        """An idempotency cache sized and timed by the settings."""
        return TTLCache(self.settings.cache_max_size, self.settings.cache_ttl_seconds)

    @property
    def jobs(self) -> JobQueue:
        """The in-memory job queue; it runs while the app is serving without a
        state URL."""
        if self.job_queue is None:
            raise RuntimeError(
                "the in-memory job queue runs only while the app is serving "
                "without a state URL"
            )
        return self.job_queue

    @property
    def job_service(self) -> JobBackend:
        """The job queue the routes use, in memory or in Redis, while serving."""
        if self.job_backend is None:
            raise RuntimeError("the job queue runs only while the app is serving")
        return self.job_backend


class ResilienceTestApp(QuartTrio):
    """A QuartTrio app carrying its `ServerSettings` and `ServerState`."""

    state: ServerState

    @property
    def settings(self) -> ServerSettings:
        return self.state.settings


def server_state() -> ServerState:
    """The state of the app handling the current request."""
    return cast(ResilienceTestApp, current_app).state
