"""JobQueue: a worker pool living in a nursery, fed by a memory channel."""

from __future__ import annotations

import bisect
import itertools
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from operator import attrgetter
from typing import Any

import attrs
import trio

from .._exceptions import leaf_exceptions
from .._service import ServiceLifetime, open_service_nursery
from .._validation import check_int, check_number
from ._json import json_size
from ._models import Job, JobContext, JobStatus, Submission
from ._registry import HandlerRegistry, InvalidPayloadError, default_registry

MIB = 1024 * 1024
_seq_of = attrgetter("seq")


def _describe(failures: Sequence[BaseException]) -> str:
    """``"Type: message"`` per exception, joined by ``"; "``; never raises (an
    exception whose ``str()`` fails is still named by its type)."""
    parts = []
    for exc in failures:
        name = type(exc).__name__
        try:
            message = str(exc)
        except Exception as broken:  # the job keeps a record even so
            message = f"<str() raised {type(broken).__name__}>"
        parts.append(f"{name}: {message}" if message else name)
    return "; ".join(parts)


def _split_escaping(
    exc: BaseException, *, queue_cancelled: bool
) -> tuple[BaseException | None, list[BaseException]]:
    """What of ``exc`` leaves the job (KeyboardInterrupt; Cancelled while the queue
    is cancelled) and the job's own failures (leaves), without calling the
    exceptions' own code (a group's ``derive``), which could fail in turn."""

    def escapes(leaf: BaseException) -> bool:
        return isinstance(leaf, KeyboardInterrupt) or (
            queue_cancelled and isinstance(leaf, trio.Cancelled)
        )

    leaves = leaf_exceptions(exc)
    escaping = [leaf for leaf in leaves if escapes(leaf)]
    failures = [leaf for leaf in leaves if not escapes(leaf)]
    if not escaping:
        return None, failures
    if not failures:
        return exc, []
    return BaseExceptionGroup("raised by a job's handler", escaping), failures


@attrs.frozen(kw_only=True)
class JobOutcome:
    """How a job's run ended, as `run_handler` found it: what to record."""

    status: JobStatus
    result: Any = None
    error: str | None = None
    result_bytes: int = 0
    """The JSON size of the final result (counted against the job's limit)."""
    shut_down: bool = False
    """Ended by the queue's own shutdown (a queue in Redis records nothing then:
    another worker runs the job again)."""


async def run_handler(
    registry: HandlerRegistry, job: Job, *, job_timeout: float
) -> tuple[JobOutcome | None, BaseException | None]:
    """Run ``job``'s handler once, in a cancel scope kept in ``job._scope`` (whose
    deadline is the job timeout, and which `JobQueue.cancel` cancels after setting
    ``job._cancel_requested``, which tells the two apart).

    Returns how the job ended, and what must be raised on once it is recorded
    (KeyboardInterrupt, or the Cancelled of a queue that is itself cancelled):
    the outcome is None only when nothing of the job's own is to be recorded
    (the caller then records the queue's shutdown). Both queues, in memory and in
    Redis, run their jobs through this one function.
    """
    started = trio.current_time() if job.started_at is None else job.started_at
    scope = job._scope = trio.CancelScope(deadline=started + job_timeout)
    result: Any = None
    returned = False
    try:
        with scope:
            handler = registry.get(job.type)
            result = await handler(job.payload, JobContext(job=job))
            returned = True
    except BaseException as exc:
        # Sorted outside the job's scope, which has already taken its own
        # Cancelled out: what is left is the job's failure, except what belongs
        # to the caller (KeyboardInterrupt, and the Cancelled of a queue that is
        # itself being cancelled), which is raised on.
        shut_down = trio.current_effective_deadline() == -math.inf
        escaping, failures = _split_escaping(exc, queue_cancelled=shut_down)
        outcome = None
        if failures or shut_down:
            outcome = _outcome(
                job, scope, job_timeout, failures=failures, shut_down=shut_down
            )
        return outcome, escaping
    else:
        return _outcome(job, scope, job_timeout, result=result, returned=returned), None
    finally:
        job._scope = None


def _outcome(
    job: Job,
    scope: trio.CancelScope,
    job_timeout: float,
    *,
    result: Any = None,
    failures: Sequence[BaseException] = (),
    returned: bool = False,
    shut_down: bool = False,
) -> JobOutcome:
    """How the handler ended: returned (with ``result``), raised ``failures``, or
    neither (its Cancelled was caught or is on its way out)."""
    if job._cancel_requested:
        status, error = JobStatus.CANCELLED, "cancelled"
    elif scope.cancel_called:
        status, error = JobStatus.FAILED, f"timed out after {job_timeout:g}s"
    elif shut_down:
        error = "queue shut down"
        if failures:
            error += f"; the handler then raised {_describe(failures)}"
        return JobOutcome(status=JobStatus.CANCELLED, error=error, shut_down=True)
    elif failures:
        return JobOutcome(status=JobStatus.FAILED, error=_describe(failures))
    else:
        try:
            size = job._count_result("final result", result)
        except ValueError as refused:  # not JSON, or too large: not kept
            return JobOutcome(status=JobStatus.FAILED, error=_describe([refused]))
        return JobOutcome(status=JobStatus.COMPLETED, result=result, result_bytes=size)
    if failures:
        error += f"; the handler then raised {_describe(failures)}"
    elif returned:
        error += "; the handler ignored the cancellation and returned"
    return JobOutcome(status=status, error=error)


class QueueFullError(Exception):
    """``max_queued`` jobs are already waiting (or their payloads already take
    ``max_retained_bytes``); try again later."""


class KeyReusedError(ValueError):
    """An idempotency key already used for a different submission.

    Raised by `JobQueue.submit_keyed` when the key's job was submitted with another
    ``fingerprint``: replaying that job would answer a request it never saw.
    """

    def __init__(self, key: str, job_id: str) -> None:
        self.key = key
        self.job_id = job_id
        super().__init__(
            f"idempotency key {key!r} was already used for a different job "
            f"({job_id}); a key replays only the same type and payload"
        )


class JobNotFoundError(KeyError):
    """No job with that id (never submitted, or already dropped)."""

    def __str__(self) -> str:
        return f"no job {self.args[0]!r}"


@attrs.frozen
class JobQueueStatistics:
    """Counts, and the JSON bytes held: ``retained_bytes`` by finished jobs (payload
    and results), ``queued_bytes`` by the payloads of waiting jobs."""

    workers: int
    pending: int
    running: int
    retained: int
    retained_bytes: int = 0
    queued_bytes: int = 0


@attrs.frozen(kw_only=True)
class JobPage:
    """One page of `JobQueue.page`: the jobs, and the cursor of the next page
    (pass it as ``after``), None on the last page."""

    jobs: list[Job]
    next_after: int | None


class JobQueue(ServiceLifetime):
    """Run submitted jobs on ``workers`` tasks that live in the queue's own nursery.

    ::

        async with JobQueue(registry, workers=4) as queue:
            job_id = await queue.submit("resize", {"image": "a.png"})
            job = await queue.wait(job_id)

    Jobs wait in arrival order; at most ``max_queued`` may wait (`QueueFullError`
    beyond). A job's failure stays in that job, whatever its shape: an exception, an
    exception group (even one holding ``Cancelled``), any `BaseException` other than
    `KeyboardInterrupt` fails the job with ``"Type: message"`` (a group's leaves
    joined by ``"; "``), and the worker goes on to the next job. A job running past
    ``job_timeout`` fails with "timed out after Ns"; `cancel` ends it as cancelled;
    if the handler then raises, or ignores the cancellation and returns, the error
    says so. Only `KeyboardInterrupt` and the cancellation of the queue itself leave
    the queue.

    Memory stays bounded, counted in JSON bytes (payload, intermediate and final
    results; see `Job.size`): finished jobs are kept for ``result_ttl`` seconds, at
    most ``max_retained`` of them taking at most ``max_retained_bytes`` together
    (oldest finished dropped first); the payloads of waiting jobs may take
    ``max_retained_bytes`` too (`QueueFullError` beyond, unless none is waiting);
    and one job's results together at most ``max_result_bytes``:
    `JobContext.add_result` refuses more (`ResultTooLargeError`), and a final
    result past it fails the job. A result that is not valid JSON (NaN, Infinity)
    is refused the same way, so every job can be served as strict JSON. None
    turns a byte limit off.

    Leaving the block stops intake, cancels jobs still waiting, gives running ones
    ``shutdown_grace`` seconds, then cancels them: after exit no job is "running"
    and no task remains.

    ``on_finished(job)``, if given, is called (synchronously; it must not raise)
    each time a job ends, completed, failed or cancelled, waiting or running.
    """

    def __init__(
        self,
        registry: HandlerRegistry | None = None,
        *,
        workers: int = 4,
        max_queued: int = 1000,
        job_timeout: float | None = None,
        result_ttl: float = 3600.0,
        max_retained: int = 10_000,
        max_retained_bytes: int | None = 32 * MIB,
        max_result_bytes: int | None = 1 * MIB,
        shutdown_grace: float = 5.0,
        on_finished: Callable[[Job], None] | None = None,
    ) -> None:
        self._registry = default_registry if registry is None else registry
        self._on_finished = on_finished
        self._workers = check_int("workers", workers, minimum=1)
        self._max_queued = check_int("max_queued", max_queued, minimum=1)
        self._job_timeout = (
            math.inf
            if job_timeout is None
            else check_number("job_timeout", job_timeout, above=0)
        )
        self._result_ttl = check_number("result_ttl", result_ttl, above=0)
        self._max_retained = check_int("max_retained", max_retained, minimum=0)
        self._max_retained_bytes = (
            math.inf
            if max_retained_bytes is None
            else check_int("max_retained_bytes", max_retained_bytes, minimum=0)
        )
        self._max_result_bytes = (
            None
            if max_result_bytes is None
            else check_int("max_result_bytes", max_result_bytes, minimum=0)
        )
        self._grace = check_number("shutdown_grace", shutdown_grace, at_least=0)
        self._jobs: dict[str, Job] = {}
        self._keys: dict[str, str] = {}
        self._finished: OrderedDict[str, float] = OrderedDict()
        # Every retained job in submission (seq) order, for paging by bisection;
        # dropped jobs stay until the list is compacted (see _prune).
        self._order: list[Job] = []
        self._dropped = 0
        self._seq = itertools.count(1)
        self._retained_bytes = 0
        self._queued_bytes = 0
        self._pending = 0
        self._running = 0
        self._wall_offset: float | None = None
        self._send: trio.MemorySendChannel[Job] | None = None

    @property
    def registry(self) -> HandlerRegistry:
        return self._registry

    @property
    def wall_clock_offset(self) -> float:
        """What to add to a job's (trio) times to get Unix times.

        Taken once, when the queue is entered, so a job's times read the same on
        every read (and keep their order and differences).
        """
        if self._wall_offset is None:
            raise RuntimeError(
                "JobQueue must be used inside 'async with JobQueue(...)'"
            )
        return self._wall_offset

    # -- lifetime -------------------------------------------------------------------

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        send, receive = trio.open_memory_channel[Job](math.inf)
        self._wall_offset = time.time() - trio.current_time()
        async with open_service_nursery() as nursery:
            async with receive:
                for _ in range(self._workers):
                    nursery.start_soon(self._worker, receive.clone())
            self._send = send
            try:
                yield
            finally:
                self._send = None
                send.close()
                for job in list(self._jobs.values()):
                    if job.status is JobStatus.PENDING:
                        self._finish(job, JobStatus.CANCELLED, error="queue shut down")
                self._pending = 0
                self._queued_bytes = 0
                running = [
                    j for j in self._jobs.values() if j.status is JobStatus.RUNNING
                ]
                with trio.move_on_after(self._grace):
                    for job in running:
                        await job._done.wait()

    async def _worker(self, receive: trio.MemoryReceiveChannel[Job]) -> None:
        async with receive:
            async for job in receive:
                if job.status is JobStatus.PENDING:
                    await self._execute(job)

    async def _execute(self, job: Job) -> None:
        self._pending -= 1
        self._queued_bytes -= job.payload_bytes
        self._running += 1
        job.status = JobStatus.RUNNING
        job.started_at = trio.current_time()
        job.attempt += 1
        try:
            outcome, escaping = await run_handler(
                self._registry, job, job_timeout=self._job_timeout
            )
            if outcome is not None:
                job.result_bytes += outcome.result_bytes
                self._finish(
                    job, outcome.status, result=outcome.result, error=outcome.error
                )
            if escaping is not None:
                raise escaping
        finally:
            self._running -= 1
            if job.status is JobStatus.RUNNING:  # the queue itself is being cancelled
                self._finish(job, JobStatus.CANCELLED, error="queue shut down")

    def _finish(
        self,
        job: Job,
        status: JobStatus,
        *,
        result: Any = None,
        error: str | None = None,
    ) -> None:
        job.status = status
        job.final_result = result
        job.error = error
        job.finished_at = trio.current_time()
        self._finished[job.id] = job.finished_at
        self._retained_bytes += job.size
        job._done.set()
        if self._on_finished is not None:
            self._on_finished(job)
        if self._over_limits():
            self._prune()

    def _over_limits(self) -> bool:
        return (
            len(self._finished) > self._max_retained
            or self._retained_bytes > self._max_retained_bytes
        )

    def _prune(self) -> None:
        """Drop finished jobs, oldest first, while over a limit or expired."""
        finished = self._finished
        if not finished:
            return
        now: float | None = None
        while finished:
            job_id, finished_at = next(iter(finished.items()))
            if not self._over_limits():
                # The oldest finished job expires first; nothing to do before then.
                if now is None:
                    now = trio.current_time()
                if finished_at + self._result_ttl > now:
                    break
            del finished[job_id]
            job = self._jobs.pop(job_id)
            self._retained_bytes -= job.size
            self._dropped += 1
            if job.key is not None and self._keys.get(job.key) == job_id:
                del self._keys[job.key]
        if self._dropped > 64 and self._dropped * 2 > len(self._order):
            jobs = self._jobs
            self._order = [job for job in self._order if job.id in jobs]
            self._dropped = 0

    # -- the API --------------------------------------------------------------------

    async def submit(
        self,
        job_type: str,
        payload: dict[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> str:
        """Queue a job and return its id at once.

        Raises `UnknownJobTypeError` (a `KeyError`) for an unregistered type,
        `InvalidPayloadError` (a `ValueError`) for a payload its type's model
        refuses or that is not valid JSON, and `QueueFullError` when ``max_queued``
        jobs are waiting. A ``key`` seen before (while its job is retained) returns
        that job's id instead of a new job; to learn which of the two happened, use
        `submit_keyed`.
        """
        return (await self.submit_keyed(job_type, payload, key=key)).job_id

    async def submit_keyed(
        self,
        job_type: str,
        payload: dict[str, Any] | None = None,
        *,
        key: str | None,
        fingerprint: str | None = None,
    ) -> Submission:
        """`submit`, also telling whether this call created the job.

        Looking the key up and creating the job are one step with no checkpoint
        in between, so of any number of concurrent calls with one key exactly one
        gets ``created=True`` and all get the same ``job_id``. (Checking `has_key`
        first and then calling `submit` is not atomic: `submit` yields.) With
        ``key=None`` every call creates a job.

        ``fingerprint`` (any string that identifies the request, such as a digest of
        type and payload) is stored with the key: a later call with the same key
        and a different fingerprint raises `KeyReusedError` instead of replaying.
        A call or a stored job without one is not compared.
        """
        await trio.lowlevel.checkpoint()
        if self._send is None:
            raise RuntimeError(
                "JobQueue must be used inside 'async with JobQueue(...)'"
            )
        self._prune()
        if key is not None and (known := self._keys.get(key)) is not None:
            stored = self._jobs[known]._fingerprint
            if fingerprint is not None and stored is not None and fingerprint != stored:
                raise KeyReusedError(key, known)
            return Submission(job_id=known, created=False)
        payload = self._registry.validate(job_type, {} if payload is None else payload)
        try:
            size = json_size(payload, "payload")
        except ValueError as error:
            problem = {"loc": (), "msg": str(error), "type": "json_invalid"}
            raise InvalidPayloadError(job_type, [problem]) from error
        if self._pending >= self._max_queued:
            raise QueueFullError(f"{self._pending} jobs are already waiting")
        if self._queued_bytes and self._queued_bytes + size > self._max_retained_bytes:
            raise QueueFullError(
                f"the payloads of the {self._pending} jobs waiting take "
                f"{self._queued_bytes} bytes; with this one they would pass "
                f"max_retained_bytes ({self._max_retained_bytes})"
            )
        job = Job(
            id=secrets.token_hex(16),
            type=job_type,
            payload=payload,
            key=key,
            seq=next(self._seq),
            created_at=trio.current_time(),
            payload_bytes=size,
            fingerprint=fingerprint,
            max_result_bytes=self._max_result_bytes,
        )
        self._jobs[job.id] = job
        self._order.append(job)
        if key is not None:
            self._keys[key] = job.id
        self._pending += 1
        self._queued_bytes += size
        self._send.send_nowait(job)
        return Submission(job_id=job.id, created=True)

    def has_key(self, key: str) -> bool:
        """Whether a retained job was submitted with this idempotency key.

        Only a snapshot: to submit unless the key is known, use `submit_keyed`.
        """
        self._prune()
        return key in self._keys

    def get(self, job_id: str) -> Job:
        """The job, live (its fields change as it runs); else `JobNotFoundError`."""
        self._prune()
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFoundError(job_id) from None

    async def wait(self, job_id: str) -> Job:
        """Block until the job is completed, failed or cancelled; return it."""
        job = self.get(job_id)
        await job._done.wait()
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a waiting one at once, a running one through its scope."""
        job = self.get(job_id)
        if job.status is JobStatus.PENDING:
            self._pending -= 1
            self._queued_bytes -= job.payload_bytes
            self._finish(job, JobStatus.CANCELLED, error="cancelled")
        elif job.status is JobStatus.RUNNING and job._scope is not None:
            job._cancel_requested = True
            job._scope.cancel()
        return job

    def list(self, status: JobStatus | None = None) -> list[Job]:
        """Retained jobs in submission order, optionally only those in ``status``.

        Every one of them: to serve them a page at a time, use `page`.
        """
        self._prune()
        jobs = self._jobs.values()
        return [job for job in jobs if status is None or job.status is status]

    def page(
        self,
        *,
        after: int | None = None,
        limit: int = 100,
        status: JobStatus | None = None,
    ) -> JobPage:
        """At most ``limit`` retained jobs in submission order, those submitted
        after the job whose ``seq`` is ``after`` (from the start if None),
        optionally only those in ``status``.

        The cursor keeps its meaning while jobs come and go, and finding the start
        of a page costs a bisection, not a walk over the jobs before it.
        """
        limit = check_int("limit", limit, minimum=1)
        if after is not None:
            after = check_int("after", after, minimum=0)
        self._prune()
        order, jobs = self._order, self._jobs
        start = 0 if after is None else bisect.bisect_right(order, after, key=_seq_of)
        found: list[Job] = []
        for index in range(start, len(order)):
            job = order[index]
            if job.id not in jobs or (status is not None and job.status is not status):
                continue
            if len(found) == limit:
                return JobPage(jobs=found, next_after=found[-1].seq)
            found.append(job)
        return JobPage(jobs=found, next_after=None)

    def statistics(self) -> JobQueueStatistics:
        return JobQueueStatistics(
            workers=self._workers,
            pending=self._pending,
            running=self._running,
            retained=len(self._jobs),
            retained_bytes=self._retained_bytes,
            queued_bytes=self._queued_bytes,
        )
