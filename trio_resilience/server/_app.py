"""The application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from pydantic import ValidationError
from quart import Response, request
from quart_cors import cors
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from .._backend import BackendUnavailableError
from ..jobs import JobBackend, JobQueue, MemoryJobBackend
from ._asgi import EXCHANGE_KEY, REQUEST_ID_KEY
from ._connections import Exchange
from ._docs import init_docs
from ._logging import configure_logging, get_logger
from ._metrics import RouteLabels, ServerMetrics
from ._middleware import wrap
from ._resources import ResourceStore
from ._responses import json_response, state_unavailable_body, validation_detail
from ._routes import (
    bodies,
    crud,
    echo,
    fail,
    faults,
    health,
    httpbin,
    jobs,
    messages,
    metrics,
    requests,
)
from ._settings import ServerSettings
from ._state import ResilienceTestApp, ServerState


@asynccontextmanager
async def open_job_queue(state: ServerState) -> AsyncIterator[JobBackend]:
    """Run the job queue the settings ask for: in Redis when the state has a
    connection (every worker process shares it), else in memory."""
    settings = state.settings
    common: dict[str, Any] = {
        "workers": settings.job_workers,
        "max_queued": settings.job_queue_size,
        "job_timeout": settings.job_timeout,
        "result_ttl": settings.job_result_ttl,
        "max_result_bytes": settings.job_max_result_bytes,
        "shutdown_grace": settings.shutdown_grace_period,
        "on_finished": None if state.metrics is None else state.metrics.job_finished,
    }
    if state.redis is not None:
        from ..jobs import RedisJobQueue

        async with RedisJobQueue(
            state.redis,
            lease=settings.job_lease_seconds,
            max_attempts=settings.job_max_attempts,
            **common,
        ) as shared:
            yield shared
        return
    async with JobQueue(
        max_retained_bytes=settings.job_max_retained_bytes, **common
    ) as queue:
        state.job_queue = queue
        yield MemoryJobBackend(queue)


def create_app(settings: ServerSettings | None = None) -> ResilienceTestApp:
    """A new test server app; ``settings`` defaults to `ServerSettings()`.

    Each app has its own failure injection, idempotency cache and concurrency
    limit, so several can run side by side (one per test, for instance).
    """
    settings = ServerSettings() if settings is None else settings
    app = ResilienceTestApp(__name__)
    app.state = ServerState(settings)
    # TimeoutMiddleware owns the time limit of a request.
    app.config["RESPONSE_TIMEOUT"] = None
    _limit_request_bodies(app, settings.max_body_bytes)
    init_docs(app, settings)
    _skip_schema_conversion_for_responses(app)
    for blueprint in (
        messages.blueprint,
        fail.blueprint,
        health.blueprint,
        requests.blueprint,
        faults.blueprint,
        jobs.blueprint,
        crud.items,
        crud.users,
        httpbin.blueprint,
        echo.blueprint,
        bodies.blueprint,
    ):
        app.register_blueprint(blueprint)
    if settings.metrics_enabled:
        app.register_blueprint(metrics.blueprint)
        app.state.metrics = ServerMetrics(RouteLabels(app.url_map))
    for name in ("items", "users"):
        app.state.resources[name] = ResourceStore(
            max_items=settings.crud_max_items, key_retention=settings.crud_key_retention
        )
    # Background tasks (the job queue) get the grace period, plus a margin.
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = settings.shutdown_grace_period + 1
    _register_error_handlers(app)
    _no_content_type_without_content(app)
    if settings.cors_enabled:
        cors(app, allow_origin=list(settings.cors_origins) or "*")

    stop_jobs = trio.Event()
    jobs_stopped = trio.Event()
    stop_redis = trio.Event()

    async def keep_redis(task_status: trio.TaskStatus[None]) -> None:
        """Hold the state backend's connection while the app serves."""
        from ..redis import RedisConnection

        assert settings.state_url is not None
        async with (
            RedisConnection(settings.state_url) as redis,
            trio.open_nursery() as nursery,
        ):
            await redis.ping()  # unreachable: start-up fails, with the reason
            app.state.use_redis(redis)
            nursery.start_soon(app.state.relay_state_events)
            task_status.started()
            await stop_redis.wait()
            nursery.cancel_scope.cancel()

    async def run_jobs(task_status: trio.TaskStatus[None]) -> None:
        try:
            async with open_job_queue(app.state) as queue:
                app.state.job_backend = queue
                task_status.started()
                await stop_jobs.wait()
        finally:
            jobs_stopped.set()

    async def fatal_if_failing(
        task: Callable[[trio.TaskStatus[None]], Awaitable[None]],
        task_status: trio.TaskStatus[None],
    ) -> None:
        """Run a background task; if it fails, record it and tell the runner,
        which stops the server (Hypercorn alone would log a lifespan error and
        keep serving without the task)."""
        try:
            await task(task_status)
        except Exception as error:
            state = app.state
            if state.background_failure is None:
                state.background_failure = error
            get_logger().error(
                "a background task of the server failed; stopping", exc_info=error
            )
            if state.on_background_failure is not None:
                state.on_background_failure()
            raise

    @app.before_serving
    async def start() -> None:
        app.state.started_at = trio.current_time()
        app.state.shutting_down = False
        app.state.background_failure = None
        if settings.state_url is not None:
            await app.nursery.start(fatal_if_failing, keep_redis)
        await app.nursery.start(fatal_if_failing, run_jobs)
        get_logger().info("server starting", settings=settings.model_dump(mode="json"))

    @app.after_serving
    async def stop() -> None:
        stop_jobs.set()
        await jobs_stopped.wait()
        stop_redis.set()
        get_logger().info("server stopped")

    inner: Any = app.asgi_app
    app.asgi_app = wrap(  # type: ignore[method-assign, assignment]
        inner,
        timeout=settings.request_timeout,
        limiter=app.state.limiter,
        queue_timeout=settings.queue_timeout,
        stopping=lambda: app.state.shutting_down,
        settings=settings,
        journal=app.state.journal,
        faults=app.state.check_faults,
        metrics=app.state.metrics,
    )
    return app


def _skip_schema_conversion_for_responses(app: ResilienceTestApp) -> None:
    """Let ready-made `Response` objects bypass quart-schema's return-value conversion.

    quart-schema wraps ``make_response`` to turn models into JSON; for a `Response`
    the conversion changes nothing but still costs about 12 µs per request, which
    matters on the hot ``/msg`` route (it returns `Response` objects directly).
    """
    schema_make_response = app.make_response
    plain_make_response = getattr(schema_make_response, "__wrapped__", None)
    if plain_make_response is None:  # a quart-schema without the wrapper
        return

    async def make_response(result: Any) -> Any:
        if isinstance(result, Response):
            return await plain_make_response(result)
        return await schema_make_response(result)

    app.make_response = make_response  # type: ignore[method-assign]


def _no_content_type_without_content(app: ResilienceTestApp) -> None:
    """A response without content has no Content-Type (a 204 no Content-Length).

    Quart's `Response` gives every response its ``default_mimetype``,
    ``text/html``, when none is set: the automatic OPTIONS answer (an empty 200
    with ``Allow``) and a route's ``Response("", status=204)`` would claim an HTML
    body they do not have. This runs after every route and error handler, so no
    route needs to care. RFC 9110 section 8.6: no Content-Length on a 204.
    """

    @app.after_request
    async def drop_content_type(response: Response) -> Response:
        if response.status_code == 204:
            del response.headers["Content-Length"]
        elif response.content_length != 0 and response.status_code != 304:
            return response
        del response.headers["Content-Type"]
        return response


def _limit_request_bodies(app: ResilienceTestApp, max_bytes: int) -> None:
    """A request body of more than ``max_bytes`` is answered 413, JSON.

    Quart holds at most that much of a body (MAX_CONTENT_LENGTH): a larger
    ``Content-Length`` is refused before the body is read, and a chunked body as
    soon as it grows past the limit while it streams in. A route that never reads
    its body still answers 413 to a ``Content-Length`` over the limit (checked
    here, before the route); a chunked body it ignores is discarded unread.
    """
    app.config["MAX_CONTENT_LENGTH"] = max_bytes
    detail = {"detail": f"Request body is larger than {max_bytes} bytes"}

    @app.before_request
    async def refuse_large_bodies() -> Response | None:
        length = request.content_length
        if length is not None and length > max_bytes:
            return json_response(detail, 413)
        return None

    @app.errorhandler(RequestEntityTooLarge)
    async def too_large(error: RequestEntityTooLarge) -> Response:
        return json_response(detail, 413)


def _register_error_handlers(app: ResilienceTestApp) -> None:
    """Every error answers ``{"detail": ...}`` as JSON, never an HTML page."""
    log = get_logger()

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_request(error: RequestSchemaValidationError) -> Any:
        inner = error.validation_error
        if isinstance(inner, ValidationError):
            return validation_detail(inner, "query").model_dump(), 422
        return {"detail": str(inner)}, 422

    @app.errorhandler(BackendUnavailableError)
    async def backend_unavailable(error: BackendUnavailableError) -> Any:
        return state_unavailable_body(error), 503, {"Retry-After": "1"}

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Any:
        headers = {
            name: value
            for name, value in error.get_headers()
            if name.lower() != "content-type"
        }
        # A ready Response skips quart-schema's conversion of a returned dict.
        return json_response({"detail": error.name}, error.code or 500, headers)

    @app.errorhandler(Exception)
    async def unexpected_error(error: Exception) -> Any:
        log.exception(
            "unhandled error",
            path=request.path,
            request_id=request.scope.get(REQUEST_ID_KEY),
        )
        exchange = request.scope.get(EXCHANGE_KEY)
        if isinstance(exchange, Exchange):
            exchange.outcome = "error"  # answered, but by a bug, not by the route
        return {"detail": "Internal Server Error"}, 500


def create_app_from_env() -> ResilienceTestApp:
    """An app for an ASGI server that loads it by path (``--reload`` does).

    The process is the server's own, so this also sets up logging as the command
    line does.
    """
    settings = ServerSettings.from_env()
    configure_logging(
        level=settings.log_level, fmt=settings.log_format, file=settings.log_file
    )
    return create_app(settings)
