"""The job API: submit, poll, list and cancel jobs of the app's `JobQueue`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model
from pydantic_core import to_jsonable_python
from quart import Blueprint, Response, request
from quart_schema import (
    document_querystring,
    document_request,
    document_response,
    tag,
)

from ...jobs import (
    HandlerRegistry,
    InvalidPayloadError,
    Job,
    JobNotFoundError,
    JobStatus,
    KeyReusedError,
    QueueFullError,
    UnknownJobTypeError,
    default_registry,
)
from .._idempotency import fingerprint
from .._openapi import document_parameter, document_response_header
from .._pagination import PageQuery, page_body
from .._responses import (
    REQUEST_ID_SCHEMA,
    ErrorDetail,
    ValidationErrorDetail,
    json_response,
    mark_replayed,
    parse_json_body,
    parse_query,
    request_id_problem,
)
from .._state import server_state

blueprint = Blueprint("jobs", __name__, url_prefix="/api/v1/jobs")


class JobSubmission(BaseModel, extra="forbid"):
    """A job to run: its type and the payload its handler gets."""

    type: str = Field(
        min_length=1, max_length=100, description="A registered job type."
    )
    payload: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Handler input, a JSON object. Built-in types: `echo` (any object), "
            "`data_processing` (`items`: at most 100,000 finite numbers, "
            "`step_delay`: 0 to 60 s), `long_running` (`duration`: 0 to 3600 s)."
        ),
    )


def documented_submission(registry: HandlerRegistry) -> type[BaseModel]:
    """The request body as the document shows it: one variant per job type of
    ``registry``, each with its payload model (the route itself validates a
    `JobSubmission`, then the queue the payload)."""
    variants: list[Any] = []
    for job_type in registry.types():
        literal: Any = Literal[job_type]
        payload: Any = registry.payload_model(job_type) or dict[str, Any]
        variants.append(
            create_model(
                "".join(part.title() for part in job_type.split("_")) + "Job",
                __config__=ConfigDict(extra="forbid"),
                __doc__=f"A {job_type} job.",
                type=(literal, Field(description="The job type.")),
                payload=(
                    payload,
                    Field(default_factory=dict, description="Handler input."),
                ),
            )
        )
    body: Any = Annotated[Union[tuple(variants)], Field(discriminator="type")]  # noqa: UP007
    return RootModel[body]


class JobView(BaseModel):
    """A job: its state, intermediate results, and final result or error."""

    id: str
    type: str
    status: JobStatus = Field(description="Where the job is in its life.")
    payload: dict[str, Any]
    intermediate_results: list[Any]
    final_result: Any
    error: str | None
    attempt: int
    created_at: float = Field(description="Unix time; the same on every read.")
    started_at: float | None
    finished_at: float | None


class JobList(BaseModel):
    """One page of jobs, oldest first; ``next`` is the next page's URL, or null."""

    jobs: list[JobView]
    next: str | None


class JobListQuery(PageQuery):
    status: JobStatus | None = Field(None, description="Only jobs in this state.")


def job_json(job: Job) -> dict[str, Any]:
    """A job as the API serves it, with Unix timestamps."""
    return job.to_dict(clock_offset=server_state().job_service.wall_clock_offset)


def request_fingerprint(submission: JobSubmission) -> str:
    """What a replay must match: the type and the payload as validated, so key
    order and spelled-out defaults do not matter (as for the CRUD routes).

    Raises what submitting would: `UnknownJobTypeError`, `InvalidPayloadError`.
    """
    payload = server_state().job_service.registry.validate(
        submission.type, submission.payload
    )
    return fingerprint(
        {"type": submission.type, "payload": to_jsonable_python(payload)}
    )


def not_found() -> Response:
    return json_response({"detail": "Job not found"}, 404)


@blueprint.post("")
@tag(["jobs"])
@document_request(documented_submission(default_registry))
@document_parameter(
    "header",
    "X-Request-ID",
    schema=REQUEST_ID_SCHEMA,
    description=(
        "Idempotency key: the same key with the same type and payload returns the "
        "job it created while that job is retained; with another body it is a 422 "
        "(blank or too long: 400)."
    ),
)
@document_response(JobView, 202)
@document_response_header(
    202,
    "Location",
    description="The job's URL, to poll.",
)
@document_response_header(
    202,
    "Idempotent-Replayed",
    schema={"const": "true"},
    description="Present when a known X-Request-ID returned the job it created.",
)
@document_response(ErrorDetail, 400)
@document_response(ErrorDetail, 413)
@document_response(ValidationErrorDetail, 422)
@document_response(ErrorDetail, 503)
@document_response_header(
    503,
    "Retry-After",
    schema={"type": "integer", "minimum": 0},
    description="Seconds to wait before trying again.",
)
async def submit_job() -> Response:
    """Queue a job; 202 with its state and a ``Location`` to poll.

    The payload is checked at once against its type's model (422 naming the field).
    An ``X-Request-ID`` makes the submission idempotent while its job is retained:
    the same id with the same type and payload (as validated) returns the job it
    created the first time (with ``Idempotent-Replayed: true``); the same id with
    another body is a 422 (``key_reused``). 400: an
    unknown type or a blank or too long ``X-Request-ID``; 413: a body over
    ``max_body_bytes``; 503: the queue is full (``Retry-After``).
    """
    submission = await parse_json_body(JobSubmission)
    if isinstance(submission, Response):
        return submission
    key = request.headers.get("X-Request-ID")
    if (problem := request_id_problem(key)) is not None:
        return problem
    queue = server_state().job_service
    try:
        submitted = await queue.submit_keyed(
            submission.type,
            submission.payload,
            key=key,
            fingerprint=None if key is None else request_fingerprint(submission),
        )
    except UnknownJobTypeError as error:
        return json_response({"detail": str(error)}, 400)
    except InvalidPayloadError as error:
        detail = [
            {
                "loc": ["body", "payload", *(str(part) for part in item["loc"])],
                "msg": item["msg"],
                "type": item["type"],
            }
            for item in error.errors
        ]
        return json_response({"detail": detail}, 422)
    except KeyReusedError as error:
        reason = (
            "Idempotency key reused with a different request body: X-Request-ID "
            f"{error.key!r} created job {error.job_id} from another body (use a "
            "new key for a new job)"
        )
        detail = [
            {"loc": ["header", "X-Request-ID"], "msg": reason, "type": "key_reused"}
        ]
        return json_response({"detail": detail}, 422)
    except QueueFullError:
        return json_response({"detail": "Job queue is full"}, 503, {"Retry-After": "1"})
    headers = {"Location": f"/api/v1/jobs/{submitted.job_id}"}
    if not submitted.created:
        mark_replayed(headers)
    job = await queue.get(submitted.job_id)
    return json_response(job_json(job), 202, headers)


@blueprint.get("/<job_id>")
@tag(["jobs"])
@document_response(JobView, 200)
@document_response(ErrorDetail, 404)
async def get_job(job_id: str) -> Response:
    """A job's state, intermediate results, and final result or error."""
    try:
        job = await server_state().job_service.get(job_id)
    except JobNotFoundError:
        return not_found()
    return json_response(job_json(job))


@blueprint.get("")
@tag(["jobs"])
@document_querystring(JobListQuery)
@document_response(JobList, 200)
@document_response(ValidationErrorDetail, 422)
async def list_jobs() -> Response:
    """Retained jobs in submission order, a page at a time.

    At most ``limit`` jobs (default 100, at most 1000), optionally only those in
    ``status``; ``next`` is the URL of the next page (it carries an ``after``
    cursor, and the filter), null on the last page.
    """
    query = parse_query(JobListQuery)
    if isinstance(query, Response):
        return query
    page = await server_state().job_service.page(
        after=None if query.after is None else int(query.after),
        limit=query.limit,
        status=query.status,
    )
    cursor = None if page.next_after is None else str(page.next_after)
    offset = server_state().job_service.wall_clock_offset
    jobs = [job.to_dict(clock_offset=offset) for job in page.jobs]
    return json_response(page_body("jobs", jobs, query, cursor))


@blueprint.delete("/<job_id>")
@tag(["jobs"])
@document_response(JobView, 200)
@document_response(ErrorDetail, 404)
async def cancel_job(job_id: str) -> Response:
    """Cancel a job: a waiting one at once, a running one as soon as it yields."""
    try:
        job = await server_state().job_service.cancel(job_id)
    except JobNotFoundError:
        return not_found()
    return json_response(job_json(job))
