"""RedisJobQueue on a real Redis: the JobQueue contract, and what several
consumers sharing one queue must show (one process each in production; here
two queues on two connections in one run act as two processes, and a queue left
without its heartbeat acts as a dead one)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from trio_resilience.jobs import (
    HandlerRegistry,
    JobContext,
    JobNotFoundError,
    JobStatus,
    KeyReusedError,
    QueueFullError,
    UnknownJobTypeError,
)
from trio_resilience.jobs._redis_queue import RedisJobQueue
from trio_resilience.redis import RedisConnection, open_redis

registry = HandlerRegistry()
release = {"gate": trio.Event()}
runs: list[tuple[str, int]] = []


@registry.handler("echo")
async def echo(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
    runs.append((ctx.job_id, ctx.attempt))
    return {"echo": payload}


@registry.handler("steps")
async def steps(payload: dict[str, Any], ctx: JobContext) -> int:
    for step in range(payload["n"]):
        ctx.add_result({"step": step})
    await release["gate"].wait()
    return payload["n"]


@registry.handler("hang")
async def hang(payload: dict[str, Any], ctx: JobContext) -> None:
    runs.append((ctx.job_id, ctx.attempt))
    await trio.sleep_forever()


@registry.handler("boom")
async def boom(payload: dict[str, Any], ctx: JobContext) -> None:
    raise ExceptionGroup("two", [ValueError("a"), KeyError("b")])


@pytest.fixture(autouse=True)
def fresh_state() -> None:
    release["gate"] = trio.Event()
    runs.clear()


@asynccontextmanager
async def queue_on(url: str, **options: Any) -> AsyncIterator[RedisJobQueue]:
    async with (
        open_redis(url) as redis,
        RedisJobQueue(redis, registry, **options) as queue,
    ):
        yield queue


async def until(condition: Any, within: float = 10.0) -> None:
    with trio.fail_after(within):
        while True:  # polled: the state is in Redis
            if await condition():
                return
            await trio.sleep(0.01)


async def test_submit_run_wait_get(redis_url: str) -> None:
    async with queue_on(redis_url, workers=2) as queue:
        job_id = await queue.submit("echo", {"x": 1})
        job = await queue.wait(job_id)
        assert job.status is JobStatus.COMPLETED
        assert job.final_result == {"echo": {"x": 1}}
        assert job.attempt == 1
        assert job.error is None
        assert job.created_at <= job.started_at <= job.finished_at  # type: ignore[operator]
        view = job.to_dict(clock_offset=queue.wall_clock_offset)
        assert view["status"] == "completed"
        with pytest.raises(JobNotFoundError):
            await queue.get("nope")
        with pytest.raises(UnknownJobTypeError):
            await queue.submit("unknown")


async def test_failures_of_every_shape_stay_in_the_job(redis_url: str) -> None:
    async with queue_on(redis_url, workers=1) as queue:
        failed = await queue.wait(await queue.submit("boom"))
        assert failed.status is JobStatus.FAILED
        assert failed.error == "ValueError: a; KeyError: 'b'"
        done = await queue.wait(await queue.submit("echo", {}))
        assert done.status is JobStatus.COMPLETED


async def test_intermediate_results_reach_redis_while_it_runs(redis_url: str) -> None:
    async with queue_on(redis_url, workers=1) as queue:
        job_id = await queue.submit("steps", {"n": 3})

        async def published() -> bool:
            job = await queue.get(job_id)
            return len(job.intermediate_results) == 3

        await until(published)
        assert (await queue.get(job_id)).status is JobStatus.RUNNING
        release["gate"].set()
        job = await queue.wait(job_id)
        assert job.intermediate_results == [{"step": s} for s in range(3)]
        assert job.final_result == 3


async def test_one_key_one_job_across_queues(redis_url: str) -> None:
    async with queue_on(redis_url) as one, queue_on(redis_url) as two:
        submissions = []

        async def submit(queue: RedisJobQueue) -> None:
            submissions.append(
                await queue.submit_keyed("echo", {"a": 1}, key="k", fingerprint="f")
            )

        async with trio.open_nursery() as nursery:
            for index in range(20):
                nursery.start_soon(submit, (one, two)[index % 2])
        assert len({s.job_id for s in submissions}) == 1
        assert sum(s.created for s in submissions) == 1
        with pytest.raises(KeyReusedError):
            await two.submit_keyed("echo", {"a": 2}, key="k", fingerprint="g")


async def test_a_full_queue_refuses(redis_url: str) -> None:
    async with queue_on(redis_url, workers=1, max_queued=2) as queue:
        first = await queue.submit("hang")
        await until(lambda: _status_is(queue, first, JobStatus.RUNNING))
        await queue.submit("echo")
        await queue.submit("echo")
        with pytest.raises(QueueFullError):
            await queue.submit("echo")
        stats = await queue.statistics()
        assert (stats.pending, stats.running) == (2, 1)


async def _status_is(queue: RedisJobQueue, job_id: str, status: JobStatus) -> bool:
    return (await queue.get(job_id)).status is status


async def test_cancel_a_waiting_and_a_running_job_from_another_queue(
    redis_url: str,
) -> None:
    async with (
        queue_on(redis_url, workers=1) as runner,
        queue_on(redis_url, workers=1) as other,
    ):
        running = await runner.submit("hang")
        await until(lambda: _status_is(runner, running, JobStatus.RUNNING))
        # The other queue's worker is busy too, so this one waits.
        busy = await other.submit("hang")
        await until(lambda: _status_is(other, busy, JobStatus.RUNNING))
        waiting = await other.submit("echo")
        assert (await other.cancel(waiting)).status is JobStatus.CANCELLED
        await other.cancel(running)
        await until(lambda: _status_is(other, running, JobStatus.CANCELLED))
        job = await other.get(running)
        assert job.error == "cancelled"
        with pytest.raises(JobNotFoundError):
            await other.cancel("nope")
        await other.cancel(busy)
        await until(lambda: _status_is(other, busy, JobStatus.CANCELLED))
        assert [job_id for job_id, _ in runs].count(waiting) == 0


async def test_on_finished_is_called_once_per_job_by_the_process_that_ended_it(
    redis_url: str,
) -> None:
    """Two queues (two processes): a waiting job cancelled by one is reported by
    that one; a running job cancelled from the other is reported by the queue
    that ran it; a completed and a failed job are reported once, wherever they
    ran."""
    ended: dict[str, list[tuple[str, JobStatus]]] = {"runner": [], "other": []}

    def hook(name: str) -> Any:
        return lambda job: ended[name].append((job.id, job.status))

    async with (
        queue_on(redis_url, workers=1, on_finished=hook("runner")) as runner,
        queue_on(redis_url, workers=1, on_finished=hook("other")) as other,
    ):
        running = await runner.submit("hang")
        await until(lambda: _status_is(runner, running, JobStatus.RUNNING))
        busy = await other.submit("hang")
        await until(lambda: _status_is(other, busy, JobStatus.RUNNING))
        waiting = await other.submit("echo")
        await other.cancel(waiting)
        assert ended == {"runner": [], "other": [(waiting, JobStatus.CANCELLED)]}
        await other.cancel(running)
        await until(lambda: _status_is(other, running, JobStatus.CANCELLED))
        await until(lambda: _reported(ended, running))
        assert ended["runner"] == [(running, JobStatus.CANCELLED)]
        done = await other.submit("echo")
        failed = await other.submit("boom")
        await other.wait(done)
        await other.wait(failed)
        await until(lambda: _reported(ended, failed))
        await other.cancel(busy)
        await until(lambda: _reported(ended, busy))
    everything = sorted(ended["runner"] + ended["other"])
    assert everything == sorted(
        [
            (waiting, JobStatus.CANCELLED),
            (running, JobStatus.CANCELLED),
            (done, JobStatus.COMPLETED),
            (failed, JobStatus.FAILED),
            (busy, JobStatus.CANCELLED),
        ]
    )
    assert (busy, JobStatus.CANCELLED) in ended["other"]


async def _reported(ended: dict[str, list[tuple[str, JobStatus]]], job_id: str) -> bool:
    await trio.lowlevel.checkpoint()
    return any(found == job_id for lst in ended.values() for found, _ in lst)


async def test_a_dead_consumers_job_runs_again_elsewhere(redis_url: str) -> None:
    """A queue cancelled without recording (as when its process dies) leaves its
    running job; another queue takes it over once the lease lapses, attempt 2."""
    lease = 0.5
    async with queue_on(redis_url, workers=1, lease=lease) as survivor:
        with trio.CancelScope() as dead:
            async with open_redis(redis_url) as redis:
                dying = RedisJobQueue(
                    redis, registry, workers=1, lease=lease, shutdown_grace=0
                )
                async with dying:
                    # Only the dying queue takes this job: the survivor's single
                    # worker is busy with a job of its own.
                    own = await survivor.submit("steps", {"n": 0})
                    await until(lambda: _status_is(survivor, own, JobStatus.RUNNING))
                    job_id = await dying.submit("hang")
                    await until(lambda: _status_is(dying, job_id, JobStatus.RUNNING))
                    dead.cancel()
        release["gate"].set()
        await survivor.wait(own)
        started = trio.current_time()
        await until(lambda: _attempt_is(survivor, job_id, 2))
        assert trio.current_time() - started <= lease + 1
        assert [attempt for run_id, attempt in runs if run_id == job_id] == [1, 2]
        await survivor.cancel(job_id)
        await until(lambda: _status_is(survivor, job_id, JobStatus.CANCELLED))


async def _attempt_is(queue: RedisJobQueue, job_id: str, attempt: int) -> bool:
    job = await queue.get(job_id)
    return job.status is JobStatus.RUNNING and job.attempt == attempt


async def test_a_job_is_given_up_after_max_attempts(redis_url: str) -> None:
    lease = 0.3
    job_id = ""
    for attempt in (1, 2):
        with trio.CancelScope() as dead:
            async with queue_on(
                redis_url, workers=1, lease=lease, shutdown_grace=0, max_attempts=2
            ) as queue:
                if not job_id:
                    job_id = await queue.submit("hang")
                await until(lambda q=queue, j=job_id, a=attempt: _attempt_is(q, j, a))
                dead.cancel()
    async with queue_on(redis_url, workers=1, lease=lease, max_attempts=2) as queue:
        job = await until_finished(queue, job_id)
        assert job.status is JobStatus.FAILED
        assert job.error == (
            "given up after 2 attempts: each time its worker stopped before the "
            "job finished"
        )


async def until_finished(queue: RedisJobQueue, job_id: str) -> Any:
    with trio.fail_after(10):
        return await queue.wait(job_id)


async def test_pages_and_retention(redis_url: str) -> None:
    """Pages in submission order; past max_retained the first finished go (one
    worker, so they finish in submission order)."""
    async with queue_on(redis_url, workers=1, max_retained=3) as queue:
        ids = [await queue.submit("echo", {"i": i}) for i in range(6)]
        for job_id in ids:
            await until(lambda j=job_id: _finished_or_gone(queue, j))
        page = await queue.page(limit=10)
        assert [job.id for job in page.jobs] == ids[3:]
        assert page.next_after is None
        first = await queue.page(limit=2)
        assert [job.id for job in first.jobs] == ids[3:5]
        assert first.next_after is not None
        rest = await queue.page(after=first.next_after, limit=2)
        assert [job.id for job in rest.jobs] == ids[5:]
        done = await queue.page(status=JobStatus.PENDING)
        assert done.jobs == []
        assert (await queue.statistics()).retained == 3


async def _finished_or_gone(queue: RedisJobQueue, job_id: str) -> bool:
    try:
        return (await queue.get(job_id)).status.finished
    except JobNotFoundError:
        return True


async def test_results_expire_after_result_ttl(redis_url: str) -> None:
    async with queue_on(redis_url, result_ttl=0.2) as queue:
        job_id = await queue.submit("echo")
        await queue.wait(job_id)

        async def gone() -> bool:
            try:
                await queue.get(job_id)
            except JobNotFoundError:
                return True
            return False

        await until(gone, within=5)


async def test_waiting_jobs_survive_a_restart(redis_url: str) -> None:
    """Jobs still waiting when every queue stops run when one starts again."""
    async with queue_on(redis_url, workers=1, shutdown_grace=0) as queue:
        blocker = await queue.submit("hang")
        await until(lambda: _status_is(queue, blocker, JobStatus.RUNNING))
        waiting = [await queue.submit("echo", {"i": i}) for i in range(3)]
        await queue.cancel(blocker)
    async with queue_on(redis_url, workers=2) as queue:
        for job_id in waiting:
            job = await until_finished(queue, job_id)
            assert job.status is JobStatus.COMPLETED


async def test_used_outside_its_block_is_an_error(redis_url: str) -> None:
    async with open_redis(redis_url) as redis:
        queue = RedisJobQueue(redis, registry)
        with pytest.raises(RuntimeError, match="inside 'async with RedisJobQueue"):
            await queue.submit("echo")
        async with queue:
            await queue.wait(await queue.submit("echo"))
        with pytest.raises(RuntimeError):
            await queue.submit("echo")
        async with queue:  # reusable after close
            await queue.wait(await queue.submit("echo"))


def test_validation() -> None:
    connection = RedisConnection("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match=r"^lease must be > 0$"):
        RedisJobQueue(connection, lease=0)
    with pytest.raises(ValueError, match=r"^max_attempts must be >= 1$"):
        RedisJobQueue(connection, max_attempts=0)
    with pytest.raises(ValueError, match=r"^prefix must not be empty$"):
        RedisJobQueue(connection, prefix="")


async def test_many_jobs_on_two_queues_none_lost(redis_url: str) -> None:
    async with (
        queue_on(redis_url, workers=4) as one,
        queue_on(redis_url, workers=4) as two,
    ):
        ids = [
            await (one, two)[i % 2].submit("echo", {"i": i, "t": secrets.token_hex(2)})
            for i in range(300)
        ]
        for job_id in ids:
            job = await until_finished(one, job_id)
            assert job.status is JobStatus.COMPLETED
        assert sorted(job_id for job_id, _ in runs) == sorted(ids)
