"""GET /metrics: the server's numbers in the Prometheus text format."""

from __future__ import annotations

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from quart import Blueprint, Response, request
from quart_schema import tag

from ..._backend import BackendUnavailableError
from ...jobs import JobQueueStatistics
from .._logging import get_logger
from .._openapi import document_content_response
from .._state import server_state

blueprint = Blueprint("metrics", __name__)


@blueprint.get("/metrics")
@tag(["metrics"])
@document_content_response(
    200,
    description=(
        "Every metric: in the Prometheus text format, or in OpenMetrics when the "
        "Accept header asks for application/openmetrics-text."
    ),
    content={CONTENT_TYPE_PLAIN_0_0_4: None, OPENMETRICS: None},
)
async def metrics() -> Response:
    """Requests, faults, sheds, timeouts, replays and jobs, for Prometheus.

    Never faulted, never held back by the concurrency limit; with a control
    token, reading it needs the token too. With several worker processes the
    numbers are the whole server's. If the state backend cannot be reached, the
    job queue's gauges are left out (and the reason logged); the rest is served.
    """
    state = server_state()
    assert state.metrics is not None  # the route exists only with metrics on
    backend = state.job_backend
    jobs: JobQueueStatistics | None = None
    if backend is not None:
        try:
            jobs = await backend.statistics()
        except BackendUnavailableError as error:
            get_logger().warning("job statistics unavailable", error=str(error))
    body, content_type = state.metrics.exposition(
        jobs, request.headers.get("Accept", "")
    )
    return Response(body, content_type=content_type)
