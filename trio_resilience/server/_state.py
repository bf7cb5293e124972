"""The per-app runtime state that the routes share."""

from __future__ import annotations

from typing import Any, cast

import attrs
import trio
from quart import current_app
from quart_trio import QuartTrio

from ..jobs import JobQueue
from ._fault_rules import FaultPlan
from ._faults import FailureInjector
from ._idempotency import SingleFlight, TTLCache
from ._journal import RequestJournal
from ._resources import ResourceStore
from ._settings import ServerSettings


@attrs.define(eq=False)
class ServerState:
    """What one running app holds: settings, failure injection, idempotent answers."""

    settings: ServerSettings
    plan: FaultPlan = attrs.field(init=False)
    """The fault rules (``/faults``), checked on every request outside the
    control routes."""
    faults: FailureInjector = attrs.field(init=False)
    """The ``/fail`` modes, two pinned rules of ``plan``."""
    messages: SingleFlight[str, str] = attrs.field(init=False)
    limiter: trio.CapacityLimiter = attrs.field(init=False)
    journal: RequestJournal = attrs.field(init=False)
    resources: dict[str, ResourceStore] = attrs.field(factory=dict)
    started_at: float = 0.0
    job_queue: JobQueue | None = None
    """The running job queue; set by the app while it serves."""
    shutting_down: bool = False
    """Set once the server has been told to stop: from then on every response
    carries ``Connection: close`` and ends its connection."""

    def __attrs_post_init__(self) -> None:
        self.plan = FaultPlan(self.settings.max_fault_rules)
        self.faults = FailureInjector(self.plan)
        self.messages = SingleFlight(self.new_cache())
        self.limiter = trio.CapacityLimiter(self.settings.max_concurrency)
        self.journal = RequestJournal(self.settings.journal_size)

    def new_cache(self) -> TTLCache[str, Any]:
        """An idempotency cache sized and timed by the settings."""
        return TTLCache(self.settings.cache_max_size, self.settings.cache_ttl_seconds)

    @property
    def jobs(self) -> JobQueue:
        """The job queue; it runs while the app is serving."""
        if self.job_queue is None:
            raise RuntimeError("the job queue runs only while the app is serving")
        return self.job_queue


class ResilienceTestApp(QuartTrio):
    """A QuartTrio app carrying its `ServerSettings` and `ServerState`."""

    state: ServerState

    @property
    def settings(self) -> ServerSettings:
        return self.state.settings


def server_state() -> ServerState:
    """The state of the app handling the current request."""
    return cast(ResilienceTestApp, current_app).state
