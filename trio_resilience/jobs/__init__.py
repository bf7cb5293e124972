"""An asynchronous job queue whose workers live in a nursery.

`JobQueue` keeps its jobs in memory; `RedisJobQueue` (``pip install
'trio-resilience[redis]'``, imported on first use) keeps them in Redis, shared by
every worker process.
"""

from typing import TYPE_CHECKING, Any

from . import _builtin  # registers the built-in handlers
from ._backends import JobBackend as JobBackend
from ._backends import MemoryJobBackend as MemoryJobBackend
from ._models import Job as Job
from ._models import JobContext as JobContext
from ._models import JobStatus as JobStatus
from ._models import ResultTooLargeError as ResultTooLargeError
from ._models import Submission as Submission
from ._queue import JobNotFoundError as JobNotFoundError
from ._queue import JobPage as JobPage
from ._queue import JobQueue as JobQueue
from ._queue import JobQueueStatistics as JobQueueStatistics
from ._queue import KeyReusedError as KeyReusedError
from ._queue import QueueFullError as QueueFullError
from ._registry import HandlerRegistry as HandlerRegistry
from ._registry import InvalidPayloadError as InvalidPayloadError
from ._registry import UnknownJobTypeError as UnknownJobTypeError
from ._registry import default_registry as default_registry
from ._registry import register_handler as register_handler

del _builtin

if TYPE_CHECKING:
    from ._redis_queue import RedisJobQueue as RedisJobQueue


def __getattr__(name: str) -> Any:
    if name == "RedisJobQueue":  # imports coredis, an optional dependency
        from ._redis_queue import RedisJobQueue

        return RedisJobQueue
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "HandlerRegistry",
    "InvalidPayloadError",
    "Job",
    "JobBackend",
    "JobContext",
    "JobNotFoundError",
    "JobPage",
    "JobQueue",
    "JobQueueStatistics",
    "JobStatus",
    "KeyReusedError",
    "MemoryJobBackend",
    "QueueFullError",
    "RedisJobQueue",
    "ResultTooLargeError",
    "Submission",
    "UnknownJobTypeError",
    "default_registry",
    "register_handler",
]
