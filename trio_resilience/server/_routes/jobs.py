"""The job API: submit, poll, list and cancel jobs of the app's `JobQueue`."""

from __future__ import annotations

import time
from typing import Any

import trio
from pydantic import BaseModel, Field, ValidationError
from quart import Blueprint, Response, request
from quart_schema import (
    document_querystring,
    document_request,
    document_response,
    tag,
)

from ...jobs import (
    Job,
    JobNotFoundError,
    JobStatus,
    QueueFullError,
    UnknownJobTypeError,
)
from .._responses import (
    ErrorDetail,
    ValidationErrorDetail,
    json_response,
    parse_json_body,
    request_id_problem,
    validation_detail,
)
from .._state import server_state

blueprint = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")


class JobSubmission(BaseModel, extra="forbid"):
    type: str = Field(
        min_length=1, max_length=100, description="A registered job type."
    )
    payload: dict[str, Any] = Field(default_factory=dict, description="Handler input.")


class JobView(BaseModel):
    id: str
    type: str
    status: str = Field(description="pending, running, completed, failed or cancelled")
    payload: dict[str, Any]
    intermediate_results: list[Any]
    final_result: Any
    error: str | None
    attempt: int
    created_at: float
    started_at: float | None
    finished_at: float | None


class JobList(BaseModel):
    jobs: list[JobView]


class JobListQuery(BaseModel):
    status: JobStatus | None = Field(None, description="Only jobs in this state.")


def job_json(job: Job) -> dict[str, Any]:
    """A job as the API serves it, with Unix timestamps."""
    return job.to_dict(clock_offset=time.time() - trio.current_time())


@blueprint.post("")
@tag(["jobs"])
@document_request(JobSubmission)
@document_response(JobView, 202)
@document_response(ErrorDetail, 400)
@document_response(ValidationErrorDetail, 422)
@document_response(ErrorDetail, 503)
async def submit_job() -> Response:
    """Queue a job; 202 with its state and a ``Location`` to poll.

    An ``X-Request-ID`` makes the submission idempotent: the same id returns the
    job it created the first time (with ``Idempotent-Replayed: true``).
    """
    submission = await parse_json_body(JobSubmission)
    if isinstance(submission, Response):
        return submission
    key = request.headers.get("X-Request-ID")
    if (problem := request_id_problem(key)) is not None:
        return problem
    queue = server_state().jobs
    try:
        submitted = await queue.submit_keyed(
            submission.type, submission.payload, key=key
        )
    except UnknownJobTypeError as error:
        return json_response({"detail": str(error)}, 400)
    except QueueFullError:
        return json_response({"detail": "Job queue is full"}, 503, {"Retry-After": "1"})
    headers = {"Location": f"/api/v1/jobs/{submitted.job_id}"}
    if not submitted.created:
        headers["Idempotent-Replayed"] = "true"
    return json_response(job_json(queue.get(submitted.job_id)), 202, headers)


@blueprint.get("/<job_id>")
@tag(["jobs"])
@document_response(JobView, 200)
@document_response(ErrorDetail, 404)
async def get_job(job_id: str) -> Response:
    """A job's state, intermediate results, and final result or error."""
    try:
        job = server_state().jobs.get(job_id)
    except JobNotFoundError:
        return json_response({"detail": "Job not found"}, 404)
    return json_response(job_json(job))


@blueprint.get("")
@tag(["jobs"])
@document_querystring(JobListQuery)
@document_response(JobList, 200)
@document_response(ValidationErrorDetail, 422)
async def list_jobs() -> Response:
    """Retained jobs in submission order, optionally filtered by ``status``."""
    try:
        query = JobListQuery.model_validate(request.args.to_dict())
    except ValidationError as error:
        return json_response(validation_detail(error, "query").model_dump(), 422)
    jobs = server_state().jobs.list(query.status)
    return json_response({"jobs": [job_json(job) for job in jobs]})


@blueprint.delete("/<job_id>")
@tag(["jobs"])
@document_response(JobView, 200)
@document_response(ErrorDetail, 404)
async def cancel_job(job_id: str) -> Response:
    """Cancel a job: a waiting one at once, a running one as soon as it yields."""
    try:
        job = server_state().jobs.cancel(job_id)
    except JobNotFoundError:
        return json_response({"detail": "Job not found"}, 404)
    return json_response(job_json(job))
