"""Handlers by job type."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

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


class InvalidPayloadError(ValueError):
    """A payload its job type's model refuses, or that is not valid JSON.

    ``errors`` holds one ``{"loc", "msg", "type"}`` dict per problem, ``loc`` a
    tuple of keys inside the payload (as pydantic reports them).
    """

    def __init__(self, job_type: str, errors: list[dict[str, Any]]) -> None:
        self.job_type = job_type
        self.errors = errors
        super().__init__(job_type)

    def __str__(self) -> str:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}"
            for e in self.errors
        )
        return f"invalid payload for job type {self.job_type!r}: {problems}"


class HandlerRegistry:
    """Maps job types to async handlers ``(payload, ctx) -> result``.

    A handler may come with a pydantic model of its payload: the queue then
    validates each payload when it is submitted (`InvalidPayloadError` there, so a
    bad payload never takes a worker) and the handler gets the validated payload
    as a dict, defaults filled in.

    >>> registry = HandlerRegistry()
    >>> class Resize(BaseModel):
    ...     sizes: list[int]
    >>> @registry.handler("resize", payload=Resize)
    ... async def resize(payload, ctx): ...
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        self._payloads: dict[str, type[BaseModel]] = {}

    def handler(
        self, job_type: str, *, payload: type[BaseModel] | None = None
    ) -> Callable[[Handler], Handler]:
        """Register the decorated async function for ``job_type``."""

        def register(fn: Handler) -> Handler:
            self.register(job_type, fn, payload=payload)
            return fn

        return register

    def register(
        self, job_type: str, fn: Handler, *, payload: type[BaseModel] | None = None
    ) -> None:
        if not isinstance(job_type, str) or not job_type:
            raise ValueError("job type must be a non-empty string")
        check_async_callable("HandlerRegistry.handler()", fn)
        if payload is not None and not (
            isinstance(payload, type) and issubclass(payload, BaseModel)
        ):
            raise TypeError("payload must be a pydantic BaseModel subclass")
        if job_type in self._handlers:
            raise ValueError(f"a handler for {job_type!r} is already registered")
        self._handlers[job_type] = fn
        if payload is not None:
            self._payloads[job_type] = payload

    def payload_model(self, job_type: str) -> type[BaseModel] | None:
        """The payload model ``job_type`` was registered with, if any."""
        self.get(job_type)
        return self._payloads.get(job_type)

    def validate(self, job_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """``payload`` as its handler will get it: validated by the type's model
        (if it has one), else unchanged. Raises `UnknownJobTypeError` or
        `InvalidPayloadError`."""
        self.get(job_type)
        model = self._payloads.get(job_type)
        if model is None:
            return payload
        try:
            return model.model_validate(payload).model_dump()
        except ValidationError as error:
            errors = [
                {"loc": item["loc"], "msg": item["msg"], "type": item["type"]}
                for item in error.errors(include_url=False)
            ]
            raise InvalidPayloadError(job_type, errors) from None

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


def register_handler(
    job_type: str, *, payload: type[BaseModel] | None = None
) -> Callable[[Handler], Handler]:
    """``@register_handler("type")``: register on the default registry."""
    return default_registry.handler(job_type, payload=payload)
