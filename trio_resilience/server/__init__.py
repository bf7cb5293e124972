"""The fault-injection test server: a Quart-Trio app served by Hypercorn."""

from .app import create_app as create_app
from .settings import ServerSettings as ServerSettings

__all__ = ["ServerSettings", "create_app"]
