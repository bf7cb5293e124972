"""Jobs, their states, and what a handler sees of its job."""

from __future__ import annotations

import enum
from typing import Any

import attrs
import trio


class JobStatus(enum.Enum):
    """Where a job is in its life: pending -> running -> one of the three ends."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@attrs.define(eq=False)
class Job:
    """One submitted job, updated by the queue as it runs (times are trio time)."""

    id: str
    type: str
    payload: dict[str, Any]
    key: str | None = None
    status: JobStatus = JobStatus.PENDING
    intermediate_results: list[Any] = attrs.field(factory=list)
    final_result: Any = None
    error: str | None = None
    attempt: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    _done: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _scope: trio.CancelScope | None = attrs.field(default=None, repr=False)
    _cancel_requested: bool = attrs.field(default=False, repr=False)

    def to_dict(self, *, clock_offset: float = 0.0) -> dict[str, Any]:
        """A JSON-ready view. Times are trio time plus ``clock_offset`` (the HTTP API
        passes ``time.time() - trio.current_time()`` to serve Unix timestamps)."""

        def at(moment: float | None) -> float | None:
            return None if moment is None else moment + clock_offset

        return {
            "id": self.id,
            "type": self.type,
            "status": self.status.value,
            "payload": self.payload,
            "intermediate_results": list(self.intermediate_results),
            "final_result": self.final_result,
            "error": self.error,
            "attempt": self.attempt,
            "created_at": at(self.created_at),
            "started_at": at(self.started_at),
            "finished_at": at(self.finished_at),
        }


@attrs.frozen
class JobContext:
    """What a handler gets besides its payload: its job's id and a results outlet."""

    _job: Job = attrs.field(alias="job")

    @property
    def job_id(self) -> str:
        return self._job.id

    @property
    def attempt(self) -> int:
        return self._job.attempt

    def add_result(self, data: Any) -> None:
        """Publish an intermediate result; pollers see it at once."""
        self._job.intermediate_results.append(data)


@attrs.frozen(kw_only=True)
class Submission:
    """What `JobQueue.submit_keyed` did: the job's id, and whether this call
    created the job (False: a job submitted earlier with the same key)."""

    job_id: str
    created: bool
