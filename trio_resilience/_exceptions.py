"""Deciding which exceptions a primitive reacts to.

`retry` and `CircuitBreaker` both take an ``on``-style argument: an exception type, a
tuple of types, or a predicate. Both also refuse to ever treat cancellation as an
ordinary failure. The two rules live here so that they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

import trio

ExceptionSpec: TypeAlias = (
    type[BaseException]
    | tuple[type[BaseException], ...]
    | Callable[[BaseException], bool]
)
"""What ``on=`` / ``expected_exception=`` accept: a type, a tuple of types, or a
predicate that receives the exception and returns whether it matches."""

_NEVER_HANDLED = (trio.Cancelled, KeyboardInterrupt, SystemExit, GeneratorExit)


def make_matcher(spec: ExceptionSpec, *, name: str) -> Callable[[BaseException], bool]:
    """Turn an exception spec into a predicate, rejecting anything else.

    ``name`` is the argument's name, used in the ``TypeError`` message.
    """
    if isinstance(spec, type) and issubclass(spec, BaseException):
        exc_type = spec
        return lambda exc: isinstance(exc, exc_type)
    if isinstance(spec, tuple) and spec:
        if all(isinstance(t, type) and issubclass(t, BaseException) for t in spec):
            exc_types = spec
            return lambda exc: isinstance(exc, exc_types)
    elif callable(spec) and not isinstance(spec, type):
        return spec
    raise TypeError(
        f"{name} must be an exception type, a non-empty tuple of exception types, "
        "or a predicate"
    )


def is_cancellation(exc: BaseException) -> bool:
    """True if ``exc`` is, or is a group containing, a cancellation or an exit request.

    Such exceptions are never retried and never counted as failures: they say that
    the caller is going away, not that the operation is unhealthy.
    """
    if isinstance(exc, _NEVER_HANDLED):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return exc.subgroup(_NEVER_HANDLED) is not None
    return False


def leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The exceptions inside ``exc``, groups flattened, in order; ``[exc]`` if plain."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_exceptions(inner)]
    return [exc]
