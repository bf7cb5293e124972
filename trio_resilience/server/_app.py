"""The application factory."""

from __future__ import annotations

from typing import Any

import trio
from pydantic import ValidationError
from quart import Response, request
from quart_cors import cors
from quart_schema import Info, QuartSchema, RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from .._version import __version__
from ..jobs import JobQueue
from ._asgi import EXCHANGE_KEY, REQUEST_ID_KEY
from ._connections import Exchange
from ._logging import configure_logging, get_logger
from ._middleware import wrap
from ._resources import ResourceStore
from ._responses import validation_detail
from ._routes import crud, faults, health, jobs, messages
from ._settings import ServerSettings
from ._state import ResilienceTestApp, ServerState


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
    docs = settings.enable_docs
    QuartSchema(
        app,
        info=Info(
            title="trio_resilience test server",
            version=__version__,
            description="Fault injection for testing HTTP clients.",
        ),
        openapi_path="/openapi.json" if docs else None,
        swagger_ui_path="/docs" if docs else None,
        redoc_ui_path="/redocs" if docs else None,
        scalar_ui_path=None,
    )
    _skip_schema_conversion_for_responses(app)
    for blueprint in (
        messages.blueprint,
        faults.blueprint,
        health.blueprint,
        jobs.blueprint,
        crud.items,
        crud.users,
    ):
        app.register_blueprint(blueprint)
    for name in ("items", "users"):
        app.state.resources[name] = ResourceStore(app.state.new_cache())
    # Background tasks (the job queue) get the grace period, plus a margin.
    app.config["BACKGROUND_TASK_SHUTDOWN_TIMEOUT"] = settings.shutdown_grace_period + 1
    _register_error_handlers(app)
    if settings.cors_enabled:
        cors(app, allow_origin=list(settings.cors_origins) or "*")

    stop_jobs = trio.Event()
    jobs_stopped = trio.Event()

    async def run_jobs(task_status: trio.TaskStatus[None]) -> None:
        try:
            async with JobQueue(
                workers=settings.job_workers,
                max_queued=settings.job_queue_size,
                job_timeout=settings.job_timeout,
                result_ttl=settings.job_result_ttl,
                shutdown_grace=settings.shutdown_grace_period,
            ) as queue:
                app.state.job_queue = queue
                task_status.started()
                await stop_jobs.wait()
        finally:
            jobs_stopped.set()

    @app.before_serving
    async def start() -> None:
        app.state.started_at = trio.current_time()
        app.state.shutting_down = False
        await app.nursery.start(run_jobs)
        get_logger().info("server starting", settings=settings.model_dump(mode="json"))

    @app.after_serving
    async def stop() -> None:
        stop_jobs.set()
        await jobs_stopped.wait()
        get_logger().info("server stopped")

    inner: Any = app.asgi_app
    app.asgi_app = wrap(  # type: ignore[method-assign, assignment]
        inner,
        timeout=settings.request_timeout,
        limiter=app.state.limiter,
        queue_timeout=settings.queue_timeout,
        stopping=lambda: app.state.shutting_down,
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


def _register_error_handlers(app: ResilienceTestApp) -> None:
    """Every error answers ``{"detail": ...}`` as JSON, never an HTML page."""
    log = get_logger()

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_request(error: RequestSchemaValidationError) -> Any:
        inner = error.validation_error
        if isinstance(inner, ValidationError):
            return validation_detail(inner, "query").model_dump(), 422
        return {"detail": str(inner)}, 422

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Any:
        headers = {
            name: value
            for name, value in error.get_headers()
            if name.lower() != "content-type"
        }
        return {"detail": error.name}, error.code or 500, headers

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
