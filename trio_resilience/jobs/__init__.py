"""An asynchronous job queue whose workers live in a nursery."""

from . import _builtin  # registers the built-in handlers
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

__all__ = [
    "HandlerRegistry",
    "InvalidPayloadError",
    "Job",
    "JobContext",
    "JobNotFoundError",
    "JobPage",
    "JobQueue",
    "JobQueueStatistics",
    "JobStatus",
    "KeyReusedError",
    "QueueFullError",
    "ResultTooLargeError",
    "Submission",
    "UnknownJobTypeError",
    "default_registry",
    "register_handler",
]
