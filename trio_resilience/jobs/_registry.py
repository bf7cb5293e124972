"""Handlers by job type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from .._validation import check_async_callable
from ._models import JobContext

Handler = Callable[[dict[str, Any], JobContext], Awaitable[Any]]


class UnknownJobTypeError(KeyError):
    """A job type nobody registered; the message names the known ones."""

    def __init__(self, job_type: str, known: list[str]) -> None:
        self.job_type = job_type
        self.known = known
        super().__init__(job_type)

    def __str__(self) -> str:
        known = ", ".join(self.known) or "none"
        return f"unknown job type {self.job_type!r}; known types: {known}"


class HandlerRegistry:
    """Maps job types to async handlers ``(payload, ctx) -> result``.

    >>> registry = HandlerRegistry()
    >>> @registry.handler("resize")
    ... async def resize(payload, ctx): ...
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def handler(self, job_type: str) -> Callable[[Handler], Handler]:
        """Register the decorated async function for ``job_type``."""

        def register(fn: Handler) -> Handler:
            self.register(job_type, fn)
            return fn

        return register

    def register(self, job_type: str, fn: Handler) -> None:
        if not isinstance(job_type, str) or not job_type:
            raise ValueError("job type must be a non-empty string")
        check_async_callable("HandlerRegistry.handler()", fn)
        if job_type in self._handlers:
            raise ValueError(f"a handler for {job_type!r} is already registered")
        self._handlers[job_type] = fn

    def get(self, job_type: str) -> Handler:
        """The handler for ``job_type``, or `UnknownJobTypeError`."""
        try:
            return self._handlers[job_type]
        except KeyError:
            raise UnknownJobTypeError(job_type, self.types()) from None

    def types(self) -> list[str]:
        return sorted(self._handlers)

    def __contains__(self, job_type: object) -> bool:
        return job_type in self._handlers


default_registry = HandlerRegistry()
"""The registry `register_handler` adds to, holding the built-in handlers."""


def register_handler(job_type: str) -> Callable[[Handler], Handler]:
    """``@register_handler("type")``: register on the default registry."""
    return default_registry.handler(job_type)
