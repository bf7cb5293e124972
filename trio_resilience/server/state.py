"""The per-app runtime state that the routes share."""

from __future__ import annotations

from typing import cast

import attrs
import trio
from quart import current_app
from quart_trio import QuartTrio

from .faults import FailureInjector
from .idempotency import SingleFlight, TTLCache
from .settings import ServerSettings


@attrs.define(eq=False)
class ServerState:
    """What one running app holds: settings, failure injection, idempotent answers."""

    settings: ServerSettings
    faults: FailureInjector = attrs.field(factory=FailureInjector)
    messages: SingleFlight[str, str] = attrs.field(init=False)
    limiter: trio.CapacityLimiter = attrs.field(init=False)
    started_at: float = 0.0

    def __attrs_post_init__(self) -> None:
        self.messages = SingleFlight(
            TTLCache(self.settings.cache_max_size, self.settings.cache_ttl_seconds)
        )
        self.limiter = trio.CapacityLimiter(self.settings.max_concurrency)


class ResilienceTestApp(QuartTrio):
    """A QuartTrio app carrying its `ServerSettings` and `ServerState`."""

    state: ServerState

    @property
    def settings(self) -> ServerSettings:
        return self.state.settings


def server_state() -> ServerState:
    """The state of the app handling the current request."""
    return cast(ResilienceTestApp, current_app).state
