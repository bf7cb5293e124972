"""An asynchronous job queue whose workers live in a nursery."""

from . import builtin as _builtin  # registers the built-in handlers
from .models import Job as Job
from .models import JobContext as JobContext
from .models import JobStatus as JobStatus
from .queue import JobNotFoundError as JobNotFoundError
from .queue import JobQueue as JobQueue
from .queue import JobQueueStatistics as JobQueueStatistics
from .queue import QueueFullError as QueueFullError
from .registry import HandlerRegistry as HandlerRegistry
from .registry import UnknownJobTypeError as UnknownJobTypeError
from .registry import default_registry as default_registry
from .registry import register_handler as register_handler

del _builtin

__all__ = [
    "HandlerRegistry",
    "Job",
    "JobContext",
    "JobNotFoundError",
    "JobQueue",
    "JobQueueStatistics",
    "JobStatus",
    "QueueFullError",
    "UnknownJobTypeError",
    "default_registry",
    "register_handler",
]
