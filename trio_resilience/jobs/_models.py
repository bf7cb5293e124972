"""Jobs, their states, and what a handler sees of its job."""

from __future__ import annotations

import enum
from typing import Any

import attrs
import trio

from ._json import json_size


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


class ResultTooLargeError(ValueError):
    """A job's results would take more than its queue's ``max_result_bytes`` as JSON.

    Raised by `JobContext.add_result` (the result is not kept); a final result over
    the limit fails its job with this error instead of being kept.
    """

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"{what} would bring the job's results to {size} bytes of JSON; "
            f"the limit is {limit}"
        )


@attrs.define(eq=False)
class Job:
    """One submitted job, updated by the queue as it runs (times are trio time).

    ``seq`` numbers a queue's jobs in submission order (1, 2, ...); paging uses it
    as its cursor. ``payload_bytes`` and ``result_bytes`` are the JSON size of the
    payload and of the results so far (intermediate and final): what the queue
    counts against its byte limits.
    """

    id: str
    type: str
    payload: dict[str, Any]
    key: str | None = None
    seq: int = 0
    status: JobStatus = JobStatus.PENDING
    intermediate_results: list[Any] = attrs.field(factory=list)
    final_result: Any = None
    error: str | None = None
    attempt: int = 0
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    payload_bytes: int = 0
    result_bytes: int = 0
    _fingerprint: str | None = attrs.field(default=None, repr=False)
    _max_result_bytes: int | None = attrs.field(default=None, repr=False)
    _done: trio.Event = attrs.field(factory=trio.Event, repr=False)
    _scope: trio.CancelScope | None = attrs.field(default=None, repr=False)
    _cancel_requested: bool = attrs.field(default=False, repr=False)

    @property
    def size(self) -> int:
        """The JSON bytes this job holds: payload and results."""
        return self.payload_bytes + self.result_bytes

    def _count_result(self, what: str, data: Any) -> int:
        """The JSON size of a new result, checked against the job's limit."""
        size = json_size(data, what)
        limit = self._max_result_bytes
        if limit is not None and self.result_bytes + size > limit:
            raise ResultTooLargeError(what, self.result_bytes + size, limit)
        return size

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
        """Publish an intermediate result; pollers see it at once.

        ``data`` must be valid JSON (no NaN or Infinity: `ValueError`), and the
        job's results together may take at most the queue's ``max_result_bytes``
        (`ResultTooLargeError`); a result refused either way is not kept.
        """
        job = self._job
        if job.status is not JobStatus.RUNNING:
            raise RuntimeError(f"job {job.id} is {job.status.value}: no more results")
        size = job._count_result("intermediate result", data)
        job.intermediate_results.append(data)
        job.result_bytes += size


@attrs.frozen(kw_only=True)
class Submission:
    """What `JobQueue.submit_keyed` did: the job's id, and whether this call
    created the job (False: a job submitted earlier with the same key)."""

    job_id: str
    created: bool
