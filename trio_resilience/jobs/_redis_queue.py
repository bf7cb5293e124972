"""RedisJobQueue: the job queue on a Redis stream, shared by every worker process.

Jobs are hashes, and a stream of their ids is read by one consumer group; every
process that opens a `RedisJobQueue` on the same Redis (and ``prefix``) is one
consumer, running jobs on ``workers`` tasks in its own nursery. What the Lua
scripts (``_redis_scripts``) guarantee, each in one round trip:

- **at least once**: a job's stream entry is acknowledged only when its outcome
  is recorded. While it runs, its consumer's heartbeat (every `tick` seconds)
  resets the entry's idle time; an entry idle past ``lease`` seconds (its
  worker died, or lost Redis) is taken over by another consumer (``XAUTOCLAIM``)
  and run again, its ``attempt`` counting up. After ``max_attempts`` runs that
  never finished, the job fails ("given up after N attempts"). A run whose lease
  lapsed may still finish; only the outcome of the run that holds the job counts.
- **cancel anywhere**: a waiting job is cancelled at once by any process; a
  running one is flagged, and its consumer's next heartbeat cancels it.
- **one job per key**: submit looks the key up and creates the job atomically.
- **bounded retention**: finished jobs expire after ``result_ttl`` seconds, and
  at most ``max_retained`` are kept (oldest first dropped).

Leaving the ``async with`` stops taking jobs, gives running ones ``shutdown_grace``
seconds and then cancels them *without recording anything*: their entries stay
pending and another process runs them once the lease lapses. Jobs still waiting
stay in Redis. Nothing is lost when a process stops, however it stops.

Times in the `Job` snapshots it answers are Unix seconds on the Redis clock
(`wall_clock_offset` is 0). Intermediate results reach Redis with the next
heartbeat, and the final ones with the outcome.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio
from coredis.exceptions import RedisError, StreamDuplicateConsumerGroupError

from .._service import ServiceLifetime, open_service_nursery
from .._validation import check_int, check_number
from ..redis import RedisConnection, RedisUnavailableError
from . import _redis_scripts as scripts
from ._json import json_size
from ._models import Job, JobStatus, Submission
from ._queue import (
    MIB,
    JobNotFoundError,
    JobPage,
    JobQueueStatistics,
    KeyReusedError,
    QueueFullError,
    run_handler,
)
from ._registry import HandlerRegistry, InvalidPayloadError, default_registry

GROUP = "workers"
_RECORD_TIMEOUT = 5.0
"""How long a finished run tries to record its outcome (shielded) before leaving
it to the lease: the job then runs again elsewhere."""
_FETCH_BLOCK_MS = 500
_LOST = (RedisUnavailableError, RedisError)
"""Redis away, back without our consumer group (restarted empty), or refusing a
command (out of memory, say): the background tasks log it, wait a tick and carry
on (making the group again) rather than take the queue down."""
_log = logging.getLogger("trio_resilience.jobs")


@attrs.define(eq=False)
class _Run:
    """A job running in this process: the handler's `Job`, its stream entry, and
    how many of its results Redis has."""

    job: Job
    entry: str
    flushed: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _number(value: Any) -> float | None:
    return None if value is None else float(_text(value))


def _snapshot(values: Sequence[Any]) -> Job:
    """A `Job` from the hash fields `scripts.FIELDS` names, in their order."""
    row = dict(zip(scripts.FIELDS, values, strict=True))
    result = row["result"]
    key = row["key"]
    return Job(
        id=_text(row["id"]),
        type=_text(row["type"]),
        payload=json.loads(row["payload"]),
        key=None if key is None else _text(key),
        seq=int(row["seq"]),
        status=JobStatus(_text(row["status"])),
        intermediate_results=json.loads(row["results"] or b"[]"),
        final_result=None if result is None else json.loads(result),
        error=None if row["error"] is None else _text(row["error"]),
        attempt=int(row["attempt"] or 0),
        created_at=float(_text(row["created"])),
        started_at=_number(row["started"]),
        finished_at=_number(row["finished"]),
        payload_bytes=int(row["pbytes"] or 0),
        result_bytes=int(row["rbytes"] or 0),
    )


def _encode(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


class RedisJobQueue(ServiceLifetime):
    """`JobQueue`'s contract on Redis, for several processes (see the module).

    ::

        async with open_redis("redis://127.0.0.1:6380/0") as redis:
            async with RedisJobQueue(redis, registry, workers=4) as queue:
                job_id = await queue.submit("resize", {"image": "a.png"})
                job = await queue.wait(job_id)

    The arguments mean what they mean for `JobQueue`, plus ``lease`` (seconds a
    running job's entry may go without a heartbeat before another process takes
    it over), ``max_attempts`` and ``prefix`` (the Redis keys' prefix: queues with
    one prefix are one queue). Unlike `JobQueue`, ``get``, ``cancel``, ``page`` and
    ``statistics`` are coroutines (they ask Redis), and every method may raise
    `RedisUnavailableError`. Per-job byte limits hold (``max_result_bytes``); the
    retained total is bounded by ``max_retained`` and ``result_ttl``.

    ``on_finished(job)`` is called by the process that ends a job: the one whose
    run of it was recorded, or the one whose `cancel` ended it while it waited.
    A job that runs out of attempts (its workers died) ends without it.
    """

    def __init__(
        self,
        connection: RedisConnection,
        registry: HandlerRegistry | None = None,
        *,
        workers: int = 4,
        max_queued: int = 1000,
        job_timeout: float | None = None,
        result_ttl: float = 3600.0,
        max_retained: int = 10_000,
        max_result_bytes: int | None = 1 * MIB,
        shutdown_grace: float = 5.0,
        lease: float = 10.0,
        max_attempts: int = 3,
        prefix: str = "tr:jobs",
        on_finished: Callable[[Job], None] | None = None,
    ) -> None:
        self._redis = connection
        self._on_finished = on_finished
        self._registry = default_registry if registry is None else registry
        self._workers = check_int("workers", workers, minimum=1)
        self._max_queued = check_int("max_queued", max_queued, minimum=1)
        self._job_timeout = (
            math.inf
            if job_timeout is None
            else check_number("job_timeout", job_timeout, above=0)
        )
        ttl = check_number("result_ttl", result_ttl, above=0)
        self._ttl_ms = max(1, round(ttl * 1000))
        self._max_retained = check_int("max_retained", max_retained, minimum=0)
        self._max_result_bytes = (
            None
            if max_result_bytes is None
            else check_int("max_result_bytes", max_result_bytes, minimum=0)
        )
        self._grace = check_number("shutdown_grace", shutdown_grace, at_least=0)
        self._lease = check_number("lease", lease, above=0)
        self._max_attempts = check_int("max_attempts", max_attempts, minimum=1)
        if not prefix:
            raise ValueError("prefix must not be empty")
        self._prefix = prefix
        self._stream = f"{prefix}:stream"
        self._consumer = ""
        self._runs: dict[str, _Run] = {}
        self._submit = connection.script(scripts.SUBMIT)
        self._start = connection.script(scripts.START)
        self._finish = connection.script(scripts.FINISH)
        self._cancel = connection.script(scripts.CANCEL)
        self._heartbeat = connection.script(scripts.HEARTBEAT)
        self._reclaim = connection.script(scripts.RECLAIM)
        self._page = connection.script(scripts.PAGE)
        self._statistics = connection.script(scripts.STATISTICS)
        self._open = False

    @property
    def registry(self) -> HandlerRegistry:
        return self._registry

    @property
    def wall_clock_offset(self) -> float:
        """0: the jobs' times are Unix seconds already (the Redis clock's)."""
        return 0.0

    @property
    def tick(self) -> float:
        """Seconds between heartbeats (and between looks for lapsed leases)."""
        return min(0.25, self._lease / 4)

    @property
    def consumer(self) -> str:
        """This process's consumer name in the group, while the queue is open."""
        return self._consumer

    # -- lifetime -------------------------------------------------------------------

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        await self._ensure_group()
        self._consumer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        free = trio.Semaphore(self._workers)
        send, receive = trio.open_memory_channel[tuple[str, str]](math.inf)
        async with open_service_nursery() as nursery:
            async with receive:
                for _ in range(self._workers):
                    nursery.start_soon(self._worker, receive.clone(), free)
            intake = trio.CancelScope()
            nursery.start_soon(self._take_jobs, intake, send, free)
            nursery.start_soon(self._beat)
            self._open = True
            try:
                yield
            finally:
                self._open = False
                intake.cancel()
                with trio.move_on_after(self._grace):
                    for run in list(self._runs.values()):
                        await run.job._done.wait()
                # Still running: cancelled with the nursery, left to the lease.

    async def _ensure_group(self) -> None:
        async def create(client: Any) -> None:
            with contextlib.suppress(StreamDuplicateConsumerGroupError):
                await client.xgroup_create(self._stream, GROUP, "0", mkstream=True)

        await self._redis.run(create)

    async def _take_jobs(
        self,
        intake: trio.CancelScope,
        send: trio.MemorySendChannel[tuple[str, str]],
        free: trio.Semaphore,
    ) -> None:
        """Hand new entries, and entries whose lease lapsed, to free workers."""
        next_reclaim = trio.current_time()
        failing = False
        with intake, send:
            while True:
                await free.acquire()
                slots = 1
                while free.value:
                    free.acquire_nowait()
                    slots += 1
                found: list[tuple[str, str]] = []
                try:
                    if trio.current_time() >= next_reclaim:
                        next_reclaim = trio.current_time() + self.tick
                        found = await self._lapsed(slots)
                    if not found:
                        found = await self._read(slots)
                    if failing:
                        _log.info("job queue: Redis answers again")
                        failing = False
                except _LOST as error:
                    if not failing:
                        _log.warning("job queue: Redis failed, retrying: %s", error)
                        failing = True
                    await trio.sleep(self.tick)
                    with contextlib.suppress(*_LOST):
                        await self._ensure_group()
                for delivery in found:
                    send.send_nowait(delivery)
                for _ in range(slots - len(found)):
                    free.release()

    async def _read(self, count: int) -> list[tuple[str, str]]:
        answer = await self._redis.run(
            lambda client: client.xreadgroup(
                GROUP,
                self._consumer,
                streams={self._stream: ">"},
                count=count,
                block=_FETCH_BLOCK_MS,
            )
        )
        found = []
        for entries in (answer or {}).values():
            for entry in entries:
                job_id = entry.field_values.get(b"id", entry.field_values.get("id"))
                if job_id is not None:
                    found.append((_text(entry.identifier), _text(job_id)))
        return found

    async def _lapsed(self, count: int) -> list[tuple[str, str]]:
        lease_ms = str(max(1, round(self._lease * 1000)))
        answer = await self._reclaim(
            [], [self._prefix, GROUP, self._consumer, lease_ms, str(count)]
        )
        pairs = [_text(item) for item in answer]
        return list(zip(pairs[0::2], pairs[1::2], strict=True))

    async def _beat(self) -> None:
        """Every tick: renew the leases of this process's runs, store their new
        intermediate results, and cancel the runs whose cancel was asked."""
        while True:
            await trio.sleep(self.tick)
            runs = list(self._runs.values())
            if not runs:
                continue
            args: list[str | int] = [self._prefix, GROUP, self._consumer]
            counts = []
            for run in runs:
                results = run.job.intermediate_results
                changed = len(results) != run.flushed
                args += [
                    run.job.id,
                    run.entry,
                    _encode(results) if changed else "",
                    run.job.result_bytes,
                ]
                counts.append(len(results))
            try:
                cancelled = await self._heartbeat([], args)
            except _LOST:
                continue  # the lease may lapse: then the job runs again elsewhere
            for run, count in zip(runs, counts, strict=True):
                run.flushed = count
            for job_id in map(_text, cancelled):
                run_ = self._runs.get(job_id)
                if run_ is not None and run_.job._scope is not None:
                    run_.job._cancel_requested = True
                    run_.job._scope.cancel()

    async def _worker(
        self, receive: trio.MemoryReceiveChannel[tuple[str, str]], free: trio.Semaphore
    ) -> None:
        async with receive:
            async for entry, job_id in receive:
                try:
                    await self._execute(entry, job_id)
                finally:
                    free.release()

    async def _execute(self, entry: str, job_id: str) -> None:
        try:
            started = await self._start(
                [],
                [
                    self._prefix,
                    job_id,
                    entry,
                    GROUP,
                    self._consumer,
                    self._max_attempts,
                    self._ttl_ms,
                    self._max_retained,
                ],
            )
        except _LOST:
            return  # the entry stays pending: another look once the lease lapses
        if int(started[0]) != 1:
            return
        attempt, job_type, payload, results, result_bytes = started[1:6]
        job = Job(
            id=job_id,
            type=_text(job_type),
            payload=json.loads(payload),
            status=JobStatus.RUNNING,
            intermediate_results=json.loads(results),
            attempt=int(attempt),
            started_at=trio.current_time(),
            result_bytes=int(result_bytes),
            max_result_bytes=self._max_result_bytes,
        )
        run = self._runs[job_id] = _Run(job, entry, len(job.intermediate_results))
        try:
            outcome, escaping = await run_handler(
                self._registry, job, job_timeout=self._job_timeout
            )
            if outcome is not None and not outcome.shut_down:
                job.status = outcome.status
                recorded = await self._record(
                    run, outcome.status, outcome.result, outcome.error
                )
                if recorded and self._on_finished is not None:
                    self._on_finished(job)
            if escaping is not None:
                raise escaping
        finally:
            del self._runs[job_id]
            job._done.set()

    async def _record(
        self, run: _Run, status: JobStatus, result: Any, error: str | None
    ) -> bool:
        """Record how the run ended; whether it was recorded (False: the job was
        no longer this process's, or Redis could not be reached)."""
        job = run.job
        results = job.intermediate_results
        args: list[str | int] = [
            self._prefix,
            job.id,
            self._consumer,
            status.value,
            error or "",
            "" if status is not JobStatus.COMPLETED else _encode(result),
            _encode(results) if len(results) != run.flushed else "",
            job.result_bytes,
            self._ttl_ms,
            self._max_retained,
            GROUP,
        ]
        # Not recorded (Redis away, or too slow): the lease lapses, and the job
        # runs again elsewhere.
        with (
            trio.move_on_after(_RECORD_TIMEOUT, shield=True),
            contextlib.suppress(*_LOST),
        ):
            return int(await self._finish([], args)) == 1
        return False

    # -- the API --------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._open:
            raise RuntimeError(
                "RedisJobQueue must be used inside 'async with RedisJobQueue(...)'"
            )

    async def submit(
        self,
        job_type: str,
        payload: dict[str, Any] | None = None,
        *,
        key: str | None = None,
    ) -> str:
        """Queue a job and return its id (see `JobQueue.submit`)."""
        return (await self.submit_keyed(job_type, payload, key=key)).job_id

    async def submit_keyed(
        self,
        job_type: str,
        payload: dict[str, Any] | None = None,
        *,
        key: str | None,
        fingerprint: str | None = None,
    ) -> Submission:
        """`JobQueue.submit_keyed`, atomic across every process of the queue."""
        self._check_open()
        payload = self._registry.validate(job_type, {} if payload is None else payload)
        try:
            size = json_size(payload, "payload")
            encoded = _encode(payload)
        except ValueError as error:
            problem = {"loc": (), "msg": str(error), "type": "json_invalid"}
            raise InvalidPayloadError(job_type, [problem]) from error
        answer = await self._submit(
            [],
            [
                self._prefix,
                secrets.token_hex(16),
                job_type,
                encoded,
                key or "",
                0 if fingerprint is None else 1,
                fingerprint or "",
                self._max_queued,
                size,
            ],
        )
        outcome = int(answer[0])
        if outcome == 3:
            raise QueueFullError(f"{self._max_queued} jobs are already waiting")
        job_id = _text(answer[1])
        if outcome == 2:
            assert key is not None
            raise KeyReusedError(key, job_id)
        return Submission(job_id=job_id, created=outcome == 0)

    async def get(self, job_id: str) -> Job:
        """A snapshot of the job (it does not change); else `JobNotFoundError`."""
        name = f"{self._prefix}:job:{job_id}"
        values = await self._redis.run(
            lambda client: client.hmget(name, list(scripts.FIELDS))
        )
        if values[0] is None:
            raise JobNotFoundError(job_id)
        return _snapshot(values)

    async def wait(self, job_id: str, *, poll: float = 0.02) -> Job:
        """Poll every ``poll`` seconds until the job is finished; return it."""
        while True:
            job = await self.get(job_id)
            if job.status.finished:
                return job
            await trio.sleep(poll)

    async def cancel(self, job_id: str) -> Job:
        """Cancel a job: a waiting one at once; a running one is cancelled by its
        worker within a tick. Returns the job as it is now."""
        found = await self._cancel(
            [], [self._prefix, job_id, self._ttl_ms, self._max_retained, GROUP]
        )
        if int(found) == 0:
            raise JobNotFoundError(job_id)
        job = await self.get(job_id)
        if int(found) == 1 and self._on_finished is not None:
            self._on_finished(job)  # it was waiting: cancelled here
        return job

    async def page(
        self,
        *,
        after: int | None = None,
        limit: int = 100,
        status: JobStatus | None = None,
    ) -> JobPage:
        """`JobQueue.page`, over every process's jobs (one round trip)."""
        limit = check_int("limit", limit, minimum=1)
        if after is not None:
            after = check_int("after", after, minimum=0)
        bound = "-inf" if after is None else f"({after}"
        more, rows = await self._page(
            [],
            [
                self._prefix,
                bound,
                limit,
                "" if status is None else status.value,
                *scripts.FIELDS,
            ],
        )
        jobs = [_snapshot(row) for row in rows]
        return JobPage(jobs=jobs, next_after=jobs[-1].seq if int(more) else None)

    async def statistics(self) -> JobQueueStatistics:
        """Counts across every process: waiting, running, retained (finished)."""
        pending, running, retained = await self._statistics([], [self._prefix])
        return JobQueueStatistics(
            workers=self._workers,
            pending=int(pending),
            running=int(running),
            retained=int(retained),
        )
