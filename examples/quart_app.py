"""A Quart-Trio service that calls another one through a single ResilientClient.

The client is opened in the app's lifespan (``while_serving``), so one connection
pool, one breaker and one retry budget serve every request, and it is closed when
the server stops. Routes take it from ``app.extensions``; one error handler turns
the client's errors into the answers a proxy gives: 503 when the upstream is shed
or the breaker is open (with its Retry-After), 504 when it timed out, 502 when it
failed otherwise, and the upstream's own status for a 4xx.

Run it against the test server (first command in another terminal)::

    python -m trio_resilience serve                  # the upstream, on :8000
    UPSTREAM_URL=http://127.0.0.1:8000 \\
        hypercorn --worker-class trio --bind 127.0.0.1:8001 examples.quart_app:app
    curl -s 127.0.0.1:8001/proxy/msg

``create_app(upstream_url, config)`` builds the same app for tests.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterator
from typing import Any

import attrs
from quart import Response, jsonify
from quart_trio import QuartTrio

from trio_resilience import ClientConfig, ResilientClient
from trio_resilience.client.errors import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    CircuitOpenError,
    RateLimitError,
    ServiceUnavailableError,
)

CLIENT = "upstream_client"
"""Where the lifespan puts the client, in ``app.extensions``."""


def proxy_answer(error: APIError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, JSON body and headers a proxy answers ``error`` with."""
    detail = {"detail": error.message, "request_id": error.request_id}
    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    if isinstance(error, CircuitOpenError | ServiceUnavailableError | RateLimitError):
        return 503, detail, headers
    if isinstance(error, APITimeoutError):
        return 504, detail, headers
    if isinstance(error, APIStatusError) and error.status_code is not None:
        return error.status_code, detail, headers
    if isinstance(error, APIConnectionError):
        return 502, detail, headers
    return 500, detail, headers


def create_app(upstream_url: str, config: ClientConfig | None = None) -> QuartTrio:
    """The service, calling ``upstream_url`` with ``config`` (defaults otherwise)."""
    app = QuartTrio(__name__)
    client_config = attrs.evolve(config or ClientConfig(), base_url=upstream_url)

    @app.while_serving
    async def upstream_client() -> AsyncIterator[None]:
        async with ResilientClient(client_config) as client:
            app.extensions[CLIENT] = client
            yield
            del app.extensions[CLIENT]

    def client() -> ResilientClient:
        found: ResilientClient = app.extensions[CLIENT]
        return found

    @app.errorhandler(APIError)
    async def upstream_failed(error: APIError) -> Response:
        status, body, headers = proxy_answer(error)
        response = jsonify(body)
        response.status_code = status
        response.headers.update(headers)
        return response

    @app.get("/proxy/msg")
    async def proxy_msg() -> dict[str, Any]:
        upstream = await client().get("/msg")
        return {"upstream": upstream.json()}

    @app.get("/proxy/items/<item_id>")
    async def proxy_item(item_id: str) -> dict[str, Any]:
        upstream = await client().get(f"/api/v1/items/{item_id}")
        body: dict[str, Any] = upstream.json()
        return body

    return app


app = create_app(os.environ.get("UPSTREAM_URL", "http://127.0.0.1:8000"))
