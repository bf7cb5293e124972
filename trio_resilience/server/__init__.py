"""The fault-injection test server: a Quart-Trio app served by Hypercorn.

``create_app(settings)`` builds the app; ``serve_forever(settings)`` serves it with
Hypercorn's Trio worker until SIGINT/SIGTERM. For an ASGI server that loads the app by
path: ``hypercorn -k trio 'trio_resilience.server:create_app_from_env()'``.
"""

from ._app import create_app as create_app
from ._app import create_app_from_env as create_app_from_env
from ._logging import configure_logging as configure_logging
from ._runner import hypercorn_config as hypercorn_config
from ._runner import serve_forever as serve_forever
from ._settings import ServerSettings as ServerSettings
from ._state import ResilienceTestApp as ResilienceTestApp
from ._workers import serve_workers as serve_workers

__all__ = [
    "ResilienceTestApp",
    "ServerSettings",
    "configure_logging",
    "create_app",
    "create_app_from_env",
    "hypercorn_config",
    "serve_forever",
    "serve_workers",
]
