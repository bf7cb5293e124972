"""JobQueue on virtual time: concurrency, order, timeouts, cancellation, retention."""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
import trio
import trio.testing

from trio_resilience.jobs import (
    HandlerRegistry,
    JobContext,
    JobNotFoundError,
    JobQueue,
    JobStatus,
    QueueFullError,
    Submission,
    UnknownJobTypeError,
    default_registry,
    register_handler,
)


def make_registry() -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("sleep")
    async def sleep(payload: dict[str, Any], ctx: JobContext) -> float:
        await trio.sleep(payload.get("seconds", 1))
        return trio.current_time()

    @registry.handler("boom")
    async def boom(payload: dict[str, Any], ctx: JobContext) -> None:
        await trio.sleep(0.5)
        raise ValueError("bad input")

    @registry.handler("steps")
    async def steps(payload: dict[str, Any], ctx: JobContext) -> str:
        for n in range(3):
            await trio.sleep(1)
            ctx.add_result({"step": n, "job": ctx.job_id, "attempt": ctx.attempt})
        return "done"

    return registry


async def test_runs_a_job_and_returns_its_result(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """submit returns an id at once; wait returns the finished job."""
    async with JobQueue(make_registry()) as queue:
        job_id = await queue.submit("sleep", {"seconds": 2})
        assert queue.get(job_id).status is JobStatus.PENDING
        job = await queue.wait(job_id)
    assert job.status is JobStatus.COMPLETED
    assert job.final_result == 2.0
    assert (job.created_at, job.started_at, job.finished_at) == (0.0, 0.0, 2.0)
    assert job.error is None


async def test_worker_concurrency_equals_workers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With 3 workers, 7 one-second jobs finish in waves of 3, in arrival order."""
    async with JobQueue(make_registry(), workers=3) as queue:
        ids = [await queue.submit("sleep", {"seconds": 1}) for _ in range(7)]
        await trio.testing.wait_all_tasks_blocked()
        assert queue.statistics().running == 3
        assert queue.statistics().pending == 4
        jobs = [await queue.wait(job_id) for job_id in ids]
    assert [job.finished_at for job in jobs] == [1.0] * 3 + [2.0] * 3 + [3.0]
    assert [job.started_at for job in jobs] == [0.0] * 3 + [1.0] * 3 + [2.0]


async def test_intermediate_results_are_visible_while_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """add_result publishes progress that get() shows before the job ends."""
    async with JobQueue(make_registry()) as queue:
        job_id = await queue.submit("steps")
        await trio.sleep(1.5)
        job = queue.get(job_id)
        assert job.status is JobStatus.RUNNING
        assert job.intermediate_results == [{"step": 0, "job": job_id, "attempt": 1}]
        await queue.wait(job_id)
    assert len(job.intermediate_results) == 3
    assert job.final_result == "done"


async def test_a_failing_handler_fails_its_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The exception's type and message are recorded; the queue keeps working."""
    async with JobQueue(make_registry(), workers=1) as queue:
        bad = await queue.submit("boom")
        good = await queue.submit("sleep", {"seconds": 1})
        failed = await queue.wait(bad)
        assert (await queue.wait(good)).status is JobStatus.COMPLETED
    assert failed.status is JobStatus.FAILED
    assert failed.error == "ValueError: bad input"
    assert failed.finished_at == 0.5


async def test_job_timeout(autojump_clock: trio.testing.MockClock) -> None:
    """A job running past job_timeout fails with "timed out" at exactly that time."""
    async with JobQueue(make_registry(), job_timeout=3) as queue:
        job = await queue.wait(await queue.submit("sleep", {"seconds": 10}))
    assert job.status is JobStatus.FAILED
    assert job.error == "timed out after 3s"
    assert job.finished_at == 3.0


class Abort(BaseException):
    """A BaseException that is neither Cancelled nor KeyboardInterrupt."""


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


class NotAString(Exception):
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


async def turns_cancel_into_error() -> None:
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        raise RuntimeError("cleanup failed") from None


async def plain_error(payload: dict[str, Any], ctx: JobContext) -> None:
    await trio.sleep(0.5)
    raise ValueError("bad input")


async def group_of_errors(payload: dict[str, Any], ctx: JobContext) -> None:
    await trio.sleep(0.5)
    raise ExceptionGroup("several", [ValueError("a"), KeyError("b")])


async def nursery_child_fails(payload: dict[str, Any], ctx: JobContext) -> None:
    async def fail_soon() -> None:
        await trio.sleep(0.5)
        raise ValueError("first")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(turns_cancel_into_error)  # fails while being cancelled
        nursery.start_soon(fail_soon)


async def nursery_at_timeout(payload: dict[str, Any], ctx: JobContext) -> None:
    # at the timeout one child raises Cancelled, the other an error: the group
    # leaving the nursery mixes Cancelled with RuntimeError
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.sleep_forever)
        nursery.start_soon(turns_cancel_into_error)


async def error_at_timeout(payload: dict[str, Any], ctx: JobContext) -> None:
    await turns_cancel_into_error()


async def base_exception(payload: dict[str, Any], ctx: JobContext) -> None:
    await trio.sleep(0.5)
    raise Abort("stop")


async def system_exit(payload: dict[str, Any], ctx: JobContext) -> None:
    await trio.sleep(0.5)
    raise SystemExit(3)


async def base_group(payload: dict[str, Any], ctx: JobContext) -> None:
    await trio.sleep(0.5)
    raise BaseExceptionGroup("mixed", [Abort("stop"), ValueError("v")])


async def swallows_and_returns_late(payload: dict[str, Any], ctx: JobContext) -> str:
    try:
        await trio.sleep_forever()
    except trio.Cancelled:
        with trio.CancelScope(shield=True):
            await trio.sleep(3)
    return "late"


async def swallows_and_returns(payload: dict[str, Any], ctx: JobContext) -> str:
    with contextlib.suppress(trio.Cancelled):  # the misbehaviour under test
        await trio.sleep_forever()
    return "ignored"


async def stray_cancelled(payload: dict[str, Any], ctx: JobContext) -> None:
    caught: trio.Cancelled | None = None
    with trio.CancelScope() as scope:
        scope.cancel()
        try:
            await trio.sleep(1)
        except trio.Cancelled as exc:
            caught = exc
            raise
    await trio.sleep(0.5)
    assert caught is not None
    raise caught  # re-raised outside the scope that caught it


class BrokenGroup(BaseExceptionGroup[BaseException]):
    """A group whose split() fails: derive() raises."""

    def derive(self, excs: Any) -> BaseExceptionGroup[BaseException]:
        raise TypeError("cannot derive")


async def broken_group(payload: dict[str, Any], ctx: JobContext) -> None:
    try:
        await trio.sleep_forever()
    except trio.Cancelled as cancelled:
        raise BrokenGroup(
            "broken", [cancelled, RuntimeError("cleanup failed")]
        ) from None


async def unprintable(payload: dict[str, Any], ctx: JobContext) -> None:
    await trio.sleep(0.5)
    raise Unprintable


async def not_a_string(payload: dict[str, Any], ctx: JobContext) -> None:
    await trio.sleep(0.5)
    raise NotAString


TIMED_OUT = "timed out after 2s"
CLEANUP = "the handler then raised RuntimeError: cleanup failed"
IGNORED = "the handler ignored the cancellation and returned"


@pytest.mark.parametrize(
    ("handler", "error", "finished_at"),
    [
        pytest.param(plain_error, "ValueError: bad input", 0.5, id="plain_error"),
        pytest.param(
            group_of_errors, "ValueError: a; KeyError: 'b'", 0.5, id="group_of_errors"
        ),
        pytest.param(
            nursery_child_fails,
            "ValueError: first; RuntimeError: cleanup failed",
            0.5,
            id="nursery_child_fails",
        ),
        pytest.param(
            nursery_at_timeout, f"{TIMED_OUT}; {CLEANUP}", 2.0, id="nursery_at_timeout"
        ),
        pytest.param(
            error_at_timeout, f"{TIMED_OUT}; {CLEANUP}", 2.0, id="error_at_timeout"
        ),
        pytest.param(base_exception, "Abort: stop", 0.5, id="base_exception"),
        pytest.param(system_exit, "SystemExit: 3", 0.5, id="system_exit"),
        pytest.param(base_group, "Abort: stop; ValueError: v", 0.5, id="base_group"),
        pytest.param(
            swallows_and_returns_late,
            f"{TIMED_OUT}; {IGNORED}",
            5.0,
            id="swallows_and_returns_late",
        ),
        pytest.param(
            swallows_and_returns,
            f"{TIMED_OUT}; {IGNORED}",
            2.0,
            id="swallows_and_returns",
        ),
        pytest.param(
            unprintable,
            "Unprintable: <str() raised RuntimeError>",
            0.5,
            id="unprintable",
        ),
        pytest.param(
            not_a_string, "NotAString: <str() raised TypeError>", 0.5, id="not_a_string"
        ),
        pytest.param(
            broken_group,
            f"{TIMED_OUT}; the handler then raised TypeError: cannot derive",
            2.0,
            id="broken_group",
        ),
    ],
)
async def test_a_failure_of_any_shape_stays_in_its_job(
    autojump_clock: trio.testing.MockClock,
    handler: Any,
    error: str,
    finished_at: float,
) -> None:
    """The job fails with a readable error; its worker goes on; the queue lives."""
    registry = make_registry()
    registry.register("bad", handler)
    async with JobQueue(registry, workers=1, job_timeout=2) as queue:
        bad = await queue.submit("bad")
        after = await queue.submit("sleep", {"seconds": 1})
        failed = await queue.wait(bad)
        done = await queue.wait(after)
        again = await queue.wait(await queue.submit("sleep", {"seconds": 1}))
    assert (failed.status, failed.error) == (JobStatus.FAILED, error)
    assert failed.finished_at == finished_at
    assert failed.final_result is None
    assert (done.status, done.finished_at) == (JobStatus.COMPLETED, finished_at + 1)
    assert again.status is JobStatus.COMPLETED


async def test_a_stray_cancelled_fails_only_its_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A Cancelled re-raised outside its scope is the job's failure, not the queue's."""
    registry = make_registry()
    registry.register("stray", stray_cancelled)
    async with JobQueue(registry, workers=1) as queue:
        failed = await queue.wait(await queue.submit("stray"))
        done = await queue.wait(await queue.submit("sleep", {"seconds": 1}))
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert re.fullmatch(
        r"Cancelled: cancelled due to explicit from task .+", failed.error
    )
    assert (done.status, done.finished_at) == (JobStatus.COMPLETED, 1.5)


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        pytest.param(error_at_timeout, f"cancelled; {CLEANUP}", id="error_at_timeout"),
        pytest.param(
            nursery_at_timeout, f"cancelled; {CLEANUP}", id="nursery_at_timeout"
        ),
        pytest.param(
            swallows_and_returns, f"cancelled; {IGNORED}", id="swallows_and_returns"
        ),
    ],
)
async def test_cancel_stays_in_its_job_whatever_the_handler_does(
    autojump_clock: trio.testing.MockClock, handler: Any, error: str
) -> None:
    """cancel() ends the job as cancelled, even if the handler fights it."""
    registry = make_registry()
    registry.register("bad", handler)
    async with JobQueue(registry, workers=1) as queue:
        bad = await queue.submit("bad")
        after = await queue.submit("sleep", {"seconds": 1})
        await trio.sleep(1)
        queue.cancel(bad)
        job = await queue.wait(bad)
        assert (await queue.wait(after)).finished_at == 2.0
    assert (job.status, job.error, job.finished_at) == (JobStatus.CANCELLED, error, 1.0)


async def sleeps_long(payload: dict[str, Any], ctx: JobContext) -> None:
    await trio.sleep(100)


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        pytest.param(sleeps_long, "queue shut down", id="sleeps_long"),
        pytest.param(
            error_at_timeout, f"queue shut down; {CLEANUP}", id="error_at_timeout"
        ),
        pytest.param(
            nursery_at_timeout, f"queue shut down; {CLEANUP}", id="nursery_at_timeout"
        ),
        pytest.param(broken_group, f"queue shut down; {CLEANUP}", id="broken_group"),
    ],
)
async def test_shutdown_after_the_grace_period_contains_handler_failures(
    autojump_clock: trio.testing.MockClock, handler: Any, error: str
) -> None:
    """A handler failing as the grace period ends leaves the block without error."""
    registry = make_registry()
    registry.register("bad", handler)
    queue = JobQueue(registry, workers=2, shutdown_grace=2)
    async with queue:
        bad = await queue.submit("bad")
        await trio.sleep(1)
    job = queue.get(bad)
    assert (job.status, job.error, job.finished_at) == (JobStatus.CANCELLED, error, 3.0)
    assert trio.current_time() == 3.0


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        pytest.param(sleeps_long, "queue shut down", id="sleeps_long"),
        pytest.param(
            error_at_timeout, f"queue shut down; {CLEANUP}", id="error_at_timeout"
        ),
        pytest.param(
            nursery_at_timeout, f"queue shut down; {CLEANUP}", id="nursery_at_timeout"
        ),
        pytest.param(broken_group, f"queue shut down; {CLEANUP}", id="broken_group"),
        pytest.param(swallows_and_returns_late, None, id="swallows_and_returns_late"),
    ],
)
async def test_cancelling_the_queue_from_outside_propagates(
    autojump_clock: trio.testing.MockClock, handler: Any, error: str | None
) -> None:
    """The queue's own cancellation is never swallowed, whatever its handlers do."""
    registry = make_registry()
    registry.register("bad", handler)
    me = trio.lowlevel.current_task()
    before = list(me.child_nurseries)
    queue = JobQueue(registry, workers=2)
    with trio.move_on_after(1) as outside:
        async with queue:
            bad = await queue.submit("bad")
            await trio.sleep_forever()
    assert outside.cancelled_caught
    job = queue.get(bad)
    if error is None:  # it shielded itself and returned: its result stands
        assert (job.status, job.final_result) == (JobStatus.COMPLETED, "late")
        assert trio.current_time() == 4.0
    else:
        assert (job.status, job.error) == (JobStatus.CANCELLED, error)
        assert trio.current_time() == 1.0
    assert me.child_nurseries == before


async def test_keyboard_interrupt_in_a_handler_is_not_contained(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """KeyboardInterrupt is the user's, not the job's: it leaves the queue."""
    registry = make_registry()

    @registry.handler("interrupt")
    async def interrupt(payload: dict[str, Any], ctx: JobContext) -> None:
        await trio.sleep(0.5)
        raise KeyboardInterrupt

    queue = JobQueue(registry)
    with pytest.RaisesGroup(KeyboardInterrupt):
        async with queue:
            job_id = await queue.submit("interrupt")
            await trio.sleep_forever()
    assert queue.get(job_id).status is JobStatus.CANCELLED
    assert trio.current_time() == 0.5


async def test_cancel_pending_job(autojump_clock: trio.testing.MockClock) -> None:
    """A waiting job is cancelled at once and never runs."""
    async with JobQueue(make_registry(), workers=1) as queue:
        first = await queue.submit("sleep", {"seconds": 5})
        second = await queue.submit("sleep", {"seconds": 5})
        await trio.testing.wait_all_tasks_blocked()
        assert queue.cancel(second).status is JobStatus.CANCELLED
        assert queue.statistics().pending == 0
        await queue.wait(first)
    assert queue.get(second).started_at is None
    assert trio.current_time() == 5.0


async def test_cancel_running_job(autojump_clock: trio.testing.MockClock) -> None:
    """A running job's scope is cancelled; it ends as cancelled and frees its worker."""
    async with JobQueue(make_registry(), workers=1) as queue:
        running = await queue.submit("sleep", {"seconds": 100})
        after = await queue.submit("sleep", {"seconds": 1})
        await trio.sleep(2)
        queue.cancel(running)
        job = await queue.wait(running)
        assert (job.status, job.finished_at) == (JobStatus.CANCELLED, 2.0)
        assert (await queue.wait(after)).finished_at == 3.0


async def test_unknown_type_names_the_known_ones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Submitting an unregistered type raises a KeyError listing the known types."""
    async with JobQueue(make_registry()) as queue:
        with pytest.raises(UnknownJobTypeError) as info:
            await queue.submit("nope")
    assert isinstance(info.value, KeyError)
    assert str(info.value) == "unknown job type 'nope'; known types: boom, sleep, steps"


async def test_full_queue(autojump_clock: trio.testing.MockClock) -> None:
    """Beyond max_queued waiting jobs, submit raises QueueFullError."""
    async with JobQueue(make_registry(), workers=1, max_queued=2) as queue:
        await queue.submit("sleep")
        await trio.testing.wait_all_tasks_blocked()  # the first one is running
        await queue.submit("sleep")
        await queue.submit("sleep")
        with pytest.raises(QueueFullError):
            await queue.submit("sleep")


async def test_repeated_key_returns_the_same_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A key makes submission idempotent."""
    async with JobQueue(make_registry()) as queue:
        first = await queue.submit("sleep", key="k")
        again = await queue.submit("sleep", key="k")
        other = await queue.submit("sleep", key="other")
    assert first == again != other


async def test_concurrent_keyed_submissions_create_one_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Of N concurrent submit_keyed calls with one key, exactly one creates the job."""
    results: list[Submission] = []
    async with JobQueue(make_registry()) as queue:

        async def submit() -> None:
            results.append(await queue.submit_keyed("sleep", key="k"))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(submit)
        plain = await queue.submit("sleep", key="k")
        fresh = await queue.submit_keyed("sleep", key=None)
        assert len(queue.list()) == 2
    assert [r.created for r in results].count(True) == 1
    assert {r.job_id for r in results} == {plain}
    assert fresh.created
    assert fresh.job_id != plain


async def test_list_by_status(autojump_clock: trio.testing.MockClock) -> None:
    """list() returns jobs in submission order, filtered by status if asked."""
    async with JobQueue(make_registry(), workers=1) as queue:
        a = await queue.submit("sleep", {"seconds": 1})
        b = await queue.submit("sleep", {"seconds": 1})
        await trio.sleep(1.5)
        assert [j.id for j in queue.list()] == [a, b]
        assert [j.id for j in queue.list(JobStatus.COMPLETED)] == [a]
        assert [j.id for j in queue.list(JobStatus.RUNNING)] == [b]


async def test_results_expire_after_ttl(autojump_clock: trio.testing.MockClock) -> None:
    """Finished jobs are dropped result_ttl seconds after they finished."""
    async with JobQueue(make_registry(), result_ttl=10) as queue:
        job_id = await queue.submit("sleep", {"seconds": 1})
        await queue.wait(job_id)
        await trio.sleep(9.5)
        assert queue.get(job_id).status is JobStatus.COMPLETED
        await trio.sleep(0.5)
        with pytest.raises(JobNotFoundError):
            queue.get(job_id)


async def test_retention_is_bounded(autojump_clock: trio.testing.MockClock) -> None:
    """At most max_retained finished jobs are kept, oldest dropped first."""
    async with JobQueue(make_registry(), workers=4, max_retained=3) as queue:
        ids = [await queue.submit("sleep", {"seconds": n + 1}) for n in range(5)]
        for job_id in ids:
            await queue.wait(job_id)
        assert [j.id for j in queue.list()] == ids[2:]


async def test_shutdown_cancels_waiting_and_running_jobs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Leaving the block: waiting jobs are cancelled, running ones get the grace
    period, then are cancelled; no job is left running and no task remains."""
    me = trio.lowlevel.current_task()
    before = list(me.child_nurseries)
    queue = JobQueue(make_registry(), workers=2, shutdown_grace=2)
    async with queue:
        quick = await queue.submit("sleep", {"seconds": 1})
        slow = await queue.submit("sleep", {"seconds": 60})
        waiting = await queue.submit("sleep", {"seconds": 1})
        await trio.sleep(0.5)
    # grace runs from 0.5 to 2.5: "quick" finishes inside it, "slow" does not
    assert trio.current_time() == 2.5
    assert queue.get(quick).status is JobStatus.COMPLETED
    assert queue.get(slow).status is JobStatus.CANCELLED
    assert queue.get(waiting).status is JobStatus.CANCELLED
    assert queue.get(waiting).error == "queue shut down"
    assert me.child_nurseries == before


async def test_graceful_shutdown_lets_short_jobs_finish(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A running job that ends within the grace period completes normally."""
    queue = JobQueue(make_registry(), shutdown_grace=5)
    async with queue:
        job_id = await queue.submit("sleep", {"seconds": 3})
        await trio.sleep(1)
    assert queue.get(job_id).status is JobStatus.COMPLETED
    assert trio.current_time() == 3.0


async def test_errors_in_the_block_propagate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An exception inside the block comes out as itself."""
    with pytest.raises(KeyError, match="mine"):
        async with JobQueue(make_registry()):
            raise KeyError("mine")


async def test_unusable_outside_its_block(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """submit before entering raises a clear RuntimeError."""
    queue = JobQueue(make_registry())
    with pytest.raises(RuntimeError, match="inside 'async with JobQueue"):
        await queue.submit("sleep")


async def test_builtin_handlers(autojump_clock: trio.testing.MockClock) -> None:
    """echo, data_processing and long_running are on the default registry."""
    assert {"echo", "data_processing", "long_running"} <= set(default_registry.types())
    async with JobQueue() as queue:
        echo = await queue.wait(await queue.submit("echo", {"a": 1}))
        data = await queue.wait(
            await queue.submit("data_processing", {"items": [1, 2, 3]})
        )
        long = await queue.wait(await queue.submit("long_running", {"duration": 2.5}))
    assert echo.final_result == {"a": 1}
    assert data.final_result == {"count": 3, "sum": 12, "mean": 4.0}
    assert [r["step"] for r in data.intermediate_results] == [
        "validated",
        "transformed",
        "aggregated",
    ]
    assert long.intermediate_results == [
        {"progress": 0.4},
        {"progress": 0.8},
        {"progress": 1.0},
    ]


def test_registry_misuse() -> None:
    """Registering twice, or a sync function, is refused."""
    registry = HandlerRegistry()

    @registry.handler("x")
    async def x(payload: dict[str, Any], ctx: JobContext) -> None: ...

    with pytest.raises(ValueError, match=r"^a handler for 'x' is already registered$"):
        registry.register("x", x)
    with pytest.raises(TypeError, match="can only decorate async functions"):
        registry.register("y", lambda p, c: None)  # type: ignore[arg-type]
    assert register_handler is not None


def test_invalid_queue_arguments() -> None:
    """Queue parameters are checked with exact messages."""
    with pytest.raises(ValueError, match=r"^workers must be >= 1$"):
        JobQueue(workers=0)
    with pytest.raises(ValueError, match=r"^max_queued must be >= 1$"):
        JobQueue(max_queued=0)
    with pytest.raises(ValueError, match=r"^job_timeout must be > 0$"):
        JobQueue(job_timeout=0)
