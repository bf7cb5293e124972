"""The one error every state backend raises when its store cannot be reached."""

from __future__ import annotations


class BackendUnavailableError(Exception):
    """Shared state could not be read or written: its store is unreachable.

    The test server answers such a request with 503 and the message as its
    ``detail``, and keeps serving; requests succeed again once the store is back.
    """
