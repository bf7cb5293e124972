"""JobQueue bounds on virtual time: bytes kept, payload models, strict JSON results,
paging, idempotency fingerprints and stable wall-clock times."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import trio
import trio.testing
from pydantic import BaseModel, Field

from trio_resilience.jobs import (
    HandlerRegistry,
    InvalidPayloadError,
    JobContext,
    JobQueue,
    JobStatus,
    KeyReusedError,
    QueueFullError,
    default_registry,
)


def json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))


class Sleep(BaseModel, extra="forbid"):
    seconds: float = Field(1.0, ge=0, le=10)


def make_registry() -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("echo")
    async def echo(payload: dict[str, Any], ctx: JobContext) -> Any:
        await trio.sleep(payload.get("seconds", 0))
        return payload.get("result", payload)

    @registry.handler("sleep", payload=Sleep)
    async def sleep(payload: dict[str, Any], ctx: JobContext) -> dict[str, Any]:
        await trio.sleep(payload["seconds"])
        return payload

    @registry.handler("emit")
    async def emit(payload: dict[str, Any], ctx: JobContext) -> str:
        for value in payload["results"]:
            ctx.add_result(value)
        return "done"

    @registry.handler("non_finite")
    async def non_finite(payload: dict[str, Any], ctx: JobContext) -> Any:
        await trio.lowlevel.checkpoint()
        if payload.get("step"):
            ctx.add_result(1)
            ctx.add_result({"x": math.inf})
        return {"x": math.nan}

    return registry


# -- bytes kept ------------------------------------------------------------------


async def test_finished_jobs_are_bounded_by_bytes_oldest_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Finished jobs over max_retained_bytes (payload + results) go, oldest first."""
    big = {"blob": "x" * 1000}  # 1013 bytes as payload, as much again as result
    async with JobQueue(make_registry(), max_retained_bytes=5000) as queue:
        ids = []
        for _ in range(3):
            ids.append(await queue.submit("echo", big))
            job = await queue.wait(ids[-1])
        assert job.size == 2 * json_bytes(big)
        assert [job.id for job in queue.list()] == ids[1:]
        assert queue.statistics().retained_bytes == 2 * 2 * json_bytes(big)


async def test_waiting_payloads_are_bounded_by_bytes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Payloads of waiting jobs may take max_retained_bytes; beyond, QueueFullError."""
    payload = {"blob": "x" * 1000, "seconds": 5}
    async with JobQueue(make_registry(), workers=1, max_retained_bytes=3000) as queue:
        running = await queue.submit("echo", payload)
        await trio.testing.wait_all_tasks_blocked()
        waiting = [await queue.submit("echo", payload) for _ in range(2)]
        assert queue.statistics().queued_bytes == 2 * json_bytes(payload)
        with pytest.raises(QueueFullError, match=r"would pass max_retained_bytes"):
            await queue.submit("echo", payload)
        queue.cancel(waiting[0])
        assert queue.statistics().queued_bytes == json_bytes(payload)
        await queue.submit("echo", payload)
        queue.cancel(running)


async def test_one_waiting_job_is_always_allowed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A payload larger than max_retained_bytes may wait if no other job does."""
    payload = {"blob": "x" * 1000, "seconds": 5}
    async with JobQueue(make_registry(), workers=1, max_retained_bytes=10) as queue:
        await queue.submit("echo", payload)
        await trio.testing.wait_all_tasks_blocked()
        waiting = await queue.submit("echo", payload)
        with pytest.raises(QueueFullError):
            await queue.submit("echo", {})
        assert queue.get(waiting).status is JobStatus.PENDING


async def test_one_jobs_results_are_bounded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """add_result refuses results past max_result_bytes, and the job fails."""
    results = ["a" * 40, "b" * 40, "c" * 40]  # 42 bytes each as JSON
    async with JobQueue(make_registry(), max_result_bytes=100) as queue:
        job = await queue.wait(await queue.submit("emit", {"results": results}))
    assert job.status is JobStatus.FAILED
    assert job.intermediate_results == results[:2]
    assert job.result_bytes == 84
    assert job.error == (
        "ResultTooLargeError: intermediate result would bring the job's results "
        "to 126 bytes of JSON; the limit is 100"
    )


async def test_a_final_result_past_the_bound_fails_its_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A final result past max_result_bytes is not kept; the job fails saying so."""
    async with JobQueue(make_registry(), max_result_bytes=100) as queue:
        job = await queue.wait(await queue.submit("echo", {"result": "x" * 200}))
    assert job.status is JobStatus.FAILED
    assert job.final_result is None
    assert job.error == (
        "ResultTooLargeError: final result would bring the job's results to 202 "
        "bytes of JSON; the limit is 100"
    )


async def test_byte_limits_can_be_turned_off(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """None for max_retained_bytes and max_result_bytes means no byte limit."""
    big = {"result": "x" * 2_000_000}
    async with JobQueue(
        make_registry(), max_retained_bytes=None, max_result_bytes=None
    ) as queue:
        ids = [await queue.submit("echo", big) for _ in range(20)]
        jobs = [await queue.wait(job_id) for job_id in ids]
        assert all(job.status is JobStatus.COMPLETED for job in jobs)
        assert len(queue.list()) == 20


# -- strict JSON -----------------------------------------------------------------


async def test_non_json_results_fail_their_job(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A NaN or Infinity result (final or intermediate) fails the job, not kept."""
    async with JobQueue(make_registry()) as queue:
        final = await queue.wait(await queue.submit("non_finite"))
        step = await queue.wait(await queue.submit("non_finite", {"step": True}))
        assert json.loads(json.dumps([j.to_dict() for j in queue.list()]))
    assert (final.status, final.final_result) == (JobStatus.FAILED, None)
    assert final.error == (
        "ValueError: final result is not valid JSON: "
        "Out of range float values are not JSON compliant"
    )
    assert step.intermediate_results == [1]
    assert step.error == (
        "ValueError: intermediate result is not valid JSON: "
        "Out of range float values are not JSON compliant"
    )


async def test_data_processing_overflow_fails_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """data_processing whose items double to inf fails; no inf is kept."""
    async with JobQueue() as queue:
        job = await queue.wait(
            await queue.submit("data_processing", {"items": [1e308], "step_delay": 0})
        )
    assert job.status is JobStatus.FAILED
    assert job.intermediate_results == [{"step": "validated", "count": 1}]
    assert job.error is not None
    assert job.error.startswith("ValueError: intermediate result is not valid JSON")
    json.dumps(job.to_dict(), allow_nan=False)


async def test_a_non_json_payload_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A payload holding NaN raises InvalidPayloadError at submit."""
    async with JobQueue(make_registry()) as queue:
        with pytest.raises(InvalidPayloadError) as info:
            await queue.submit("echo", {"x": math.nan})
        assert queue.list() == []
    assert info.value.errors == [
        {
            "loc": (),
            "msg": "payload is not valid JSON: "
            "Out of range float values are not JSON compliant",
            "type": "json_invalid",
        }
    ]


async def test_add_result_after_the_job_ended_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A context kept past its job's end cannot add results (the bytes are counted)."""
    kept: list[JobContext] = []
    registry = HandlerRegistry()

    @registry.handler("keep")
    async def keep(payload: dict[str, Any], ctx: JobContext) -> None:
        await trio.lowlevel.checkpoint()
        kept.append(ctx)

    async with JobQueue(registry) as queue:
        job_id = await queue.submit("keep")
        await queue.wait(job_id)
        with pytest.raises(
            RuntimeError, match=rf"^job {job_id} is completed: no more results$"
        ):
            kept[0].add_result(1)


# -- payload models --------------------------------------------------------------


async def test_a_payload_model_validates_at_submit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """payload=Model: validated payload to the handler, else InvalidPayloadError."""
    async with JobQueue(make_registry()) as queue:
        job = await queue.wait(await queue.submit("sleep", {}))
        with pytest.raises(InvalidPayloadError) as info:
            await queue.submit("sleep", {"seconds": 1e9})
        with pytest.raises(InvalidPayloadError):
            await queue.submit("sleep", {"sec": 1})
        assert len(queue.list()) == 1
    assert job.payload == {"seconds": 1.0}
    assert job.final_result == {"seconds": 1.0}
    assert isinstance(info.value, ValueError)
    assert info.value.errors == [
        {
            "loc": ("seconds",),
            "msg": "Input should be less than or equal to 10",
            "type": "less_than_equal",
        }
    ]
    assert str(info.value) == (
        "invalid payload for job type 'sleep': "
        "seconds: Input should be less than or equal to 10"
    )


@pytest.mark.parametrize(
    ("job_type", "payload", "loc"),
    [
        ("data_processing", {"items": "x"}, ("items",)),
        ("data_processing", {"items": [1, True]}, ("items", 1)),
        ("data_processing", {"items": [1, "2"]}, ("items", 1)),
        ("data_processing", {"items": [math.nan]}, ("items", 0)),
        ("data_processing", {"items": [0] * 100_001}, ("items",)),
        ("data_processing", {"step_delay": 1e9}, ("step_delay",)),
        ("data_processing", {"step_delay": -1}, ("step_delay",)),
        ("data_processing", {"step_delay": "1"}, ("step_delay",)),
        ("data_processing", {"stepdelay": 1}, ("stepdelay",)),
        ("long_running", {"duration": 3600.5}, ("duration",)),
        ("long_running", {"duration": -1}, ("duration",)),
        ("long_running", {"duration": math.inf}, ("duration",)),
        ("long_running", {"duration": True}, ("duration",)),
    ],
)
async def test_builtin_payloads_are_validated_at_submit(
    autojump_clock: trio.testing.MockClock,
    job_type: str,
    payload: dict[str, Any],
    loc: tuple[str | int, ...],
) -> None:
    """Built-in handlers refuse bad payloads at submit, naming the field."""
    async with JobQueue() as queue:
        with pytest.raises(InvalidPayloadError) as info:
            await queue.submit(job_type, payload)
    assert [error["loc"] for error in info.value.errors] == [loc]


async def test_builtin_payloads_at_their_bounds_run(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The largest allowed step_delay and duration run, for exactly that long."""
    async with JobQueue(result_ttl=10_000) as queue:
        data = await queue.submit(
            "data_processing", {"items": [1, 2.5], "step_delay": 60}
        )
        long = await queue.submit("long_running", {"duration": 3600})
        echo = await queue.submit("echo", {"anything": [1, {"b": None}]})
        done = [await queue.wait(job_id) for job_id in (data, long, echo)]
    assert [job.status for job in done] == [JobStatus.COMPLETED] * 3
    assert done[0].final_result == {"count": 2, "sum": 7.0, "mean": 3.5}
    assert done[0].finished_at == 180.0
    assert done[1].finished_at == 3600.0
    assert len(done[1].intermediate_results) == 3600
    assert done[2].final_result == {"anything": [1, {"b": None}]}


def test_registry_payload_model_misuse_and_lookup() -> None:
    """payload= must be a pydantic model class; payload_model tells which one."""
    registry = HandlerRegistry()

    async def handler(payload: dict[str, Any], ctx: JobContext) -> None: ...

    with pytest.raises(
        TypeError, match=r"^payload must be a pydantic BaseModel subclass$"
    ):
        registry.register("x", handler, payload=dict)  # type: ignore[arg-type]
    assert "x" not in registry
    registry.register("x", handler, payload=Sleep)
    registry.register("y", handler)
    assert registry.payload_model("x") is Sleep
    assert registry.payload_model("y") is None
    assert registry.validate("y", {"any": 1}) == {"any": 1}
    assert default_registry.payload_model("echo") is None


# -- idempotency fingerprints ----------------------------------------------------


async def test_a_key_reused_with_another_fingerprint_is_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Same key, other fingerprint: KeyReusedError; same or none: a replay."""
    async with JobQueue(make_registry()) as queue:
        first = await queue.submit_keyed("echo", {"a": 1}, key="k", fingerprint="f1")
        again = await queue.submit_keyed("echo", {"a": 1}, key="k", fingerprint="f1")
        with pytest.raises(KeyReusedError) as info:
            await queue.submit_keyed("echo", {"a": 2}, key="k", fingerprint="f2")
        unchecked = await queue.submit_keyed("echo", {"a": 2}, key="k")
        plain = await queue.submit_keyed("echo", {}, key="p")
        later = await queue.submit_keyed("echo", {}, key="p", fingerprint="f3")
        assert len(queue.list()) == 2
    assert first.created
    assert (again.job_id, again.created) == (first.job_id, False)
    assert unchecked.job_id == first.job_id
    assert (later.job_id, later.created) == (plain.job_id, False)
    assert isinstance(info.value, ValueError)
    assert (info.value.key, info.value.job_id) == ("k", first.job_id)
    assert str(info.value) == (
        f"idempotency key 'k' was already used for a different job "
        f"({first.job_id}); a key replays only the same type and payload"
    )


# -- paging ----------------------------------------------------------------------


async def test_page_walks_jobs_in_submission_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """page(after, limit, status) serves each job once, in seq order."""
    async with JobQueue(make_registry(), workers=1, max_retained=100) as queue:
        ids = [await queue.submit("echo", {"seconds": 1}) for _ in range(7)]
        seqs = [queue.get(job_id).seq for job_id in ids]
        assert seqs == list(range(1, 8))
        first = queue.page(limit=3)
        assert [job.id for job in first.jobs] == ids[:3]
        assert first.next_after == 3
        second = queue.page(after=first.next_after, limit=3)
        assert [job.id for job in second.jobs] == ids[3:6]
        last = queue.page(after=second.next_after, limit=3)
        assert ([job.id for job in last.jobs], last.next_after) == ([ids[6]], None)
        exact = queue.page(after=4, limit=3)
        assert ([job.id for job in exact.jobs], exact.next_after) == (ids[4:], None)
        await trio.sleep(2.5)  # ids[0:2] done, ids[2] running, the rest waiting
        pending = queue.page(status=JobStatus.PENDING, limit=2)
        assert [job.id for job in pending.jobs] == ids[3:5]
        assert pending.next_after == 5
        done = queue.page(status=JobStatus.COMPLETED)
        assert ([job.id for job in done.jobs], done.next_after) == (ids[:2], None)
        assert queue.page(after=100).jobs == []


async def test_page_skips_dropped_jobs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Jobs dropped by retention never show in a page; the cursor stays valid."""
    async with JobQueue(make_registry(), workers=1, max_retained=10) as queue:
        ids = [await queue.submit("echo") for _ in range(300)]
        await queue.wait(ids[-1])
        page = queue.page(after=5, limit=4)
        assert [job.id for job in page.jobs] == ids[290:294]
        rest = queue.page(after=page.next_after, limit=100)
        assert [job.id for job in rest.jobs] == ids[294:]
        assert rest.next_after is None


def test_page_misuse() -> None:
    """page's limit and after are checked with exact messages."""
    queue = JobQueue(make_registry())
    with pytest.raises(ValueError, match=r"^limit must be >= 1$"):
        queue.page(limit=0)
    with pytest.raises(ValueError, match=r"^after must be >= 0$"):
        queue.page(after=-1)
    with pytest.raises(TypeError, match=r"^after must be an int, not str$"):
        queue.page(after="3")  # type: ignore[arg-type]


# -- wall-clock times ------------------------------------------------------------


async def test_wall_clock_times_do_not_change_between_reads(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The wall-clock offset is taken once per queue: a job reads the same later."""
    async with JobQueue(make_registry()) as queue:
        offset = queue.wall_clock_offset
        job = await queue.wait(await queue.submit("echo", {"seconds": 2}))
        first = job.to_dict(clock_offset=queue.wall_clock_offset)
        await trio.sleep(30)
        second = job.to_dict(clock_offset=queue.wall_clock_offset)
    assert first == second
    assert queue.wall_clock_offset == offset
    assert first["created_at"] == offset
    assert first["finished_at"] - first["created_at"] == 2.0


def test_wall_clock_offset_needs_an_entered_queue() -> None:
    """Before the queue is entered it has no offset: a clear RuntimeError."""
    with pytest.raises(
        RuntimeError,
        match=r"^JobQueue must be used inside 'async with JobQueue\(\.\.\.\)'$",
    ):
        _ = JobQueue(make_registry()).wall_clock_offset


def test_invalid_byte_limits() -> None:
    """Byte limits are checked with exact messages."""
    with pytest.raises(ValueError, match=r"^max_retained_bytes must be >= 0$"):
        JobQueue(max_retained_bytes=-1)
    with pytest.raises(ValueError, match=r"^max_result_bytes must be >= 0$"):
        JobQueue(max_result_bytes=-1)
    with pytest.raises(
        TypeError, match=r"^max_result_bytes must be an int, not float$"
    ):
        JobQueue(max_result_bytes=1.5)  # type: ignore[arg-type]
