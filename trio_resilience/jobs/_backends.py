"""What the HTTP routes need of a job queue, in memory or in Redis.

`JobQueue` answers ``get``, ``cancel`` and ``page`` at once (its jobs are in this
process), `RedisJobQueue` has to ask Redis; `JobBackend` is the one async face
both show the routes, and `MemoryJobBackend` puts it on a `JobQueue`.
"""

from __future__ import annotations

from typing import Any, Protocol

from ._models import Job, JobStatus, Submission
from ._queue import JobPage, JobQueue, JobQueueStatistics
from ._registry import HandlerRegistry


class JobBackend(Protocol):
    """A running job queue as the routes use it (`RedisJobQueue` is one)."""

    @property
    def registry(self) -> HandlerRegistry: ...

    @property
    def wall_clock_offset(self) -> float:
        """What to add to a job's times to get Unix seconds."""
        ...

    async def submit_keyed(
        self,
        job_type: str,
        payload: dict[str, Any] | None = None,
        *,
        key: str | None,
        fingerprint: str | None = None,
    ) -> Submission: ...

    async def get(self, job_id: str) -> Job: ...

    async def cancel(self, job_id: str) -> Job: ...

    async def page(
        self,
        *,
        after: int | None = None,
        limit: int = 100,
        status: JobStatus | None = None,
    ) -> JobPage: ...

    async def statistics(self) -> JobQueueStatistics:
        """Jobs waiting, running and retained (every process's, in Redis)."""
        ...


class MemoryJobBackend:
    """`JobBackend` over a running `JobQueue`.

    ``get``, ``cancel`` and ``page`` answer without a checkpoint, as the queue's
    own methods do: a job just submitted is still seen waiting, and nothing runs
    between a read and the response built from it.
    """

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    @property
    def registry(self) -> HandlerRegistry:
        return self.queue.registry

    @property
    def wall_clock_offset(self) -> float:
        return self.queue.wall_clock_offset

    async def submit_keyed(
        self,
        job_type: str,
        payload: dict[str, Any] | None = None,
        *,
        key: str | None,
        fingerprint: str | None = None,
    ) -> Submission:
        return await self.queue.submit_keyed(
            job_type, payload, key=key, fingerprint=fingerprint
        )

    async def get(self, job_id: str) -> Job:
        return self.queue.get(job_id)

    async def cancel(self, job_id: str) -> Job:
        return self.queue.cancel(job_id)

    async def page(
        self,
        *,
        after: int | None = None,
        limit: int = 100,
        status: JobStatus | None = None,
    ) -> JobPage:
        return self.queue.page(after=after, limit=limit, status=status)

    async def statistics(self) -> JobQueueStatistics:
        return self.queue.statistics()
