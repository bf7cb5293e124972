"""The two reference servers of ``bench_server.py``: bare Quart-Trio and raw ASGI.

Both answer ``GET /msg`` with ``{"message_id": "<uuid4>"}`` like the test server,
and nothing else: no middleware, no validation, no logging, no access log.

``bench_server.py`` starts them with::

    python -m benchmarks._baselines {quart_app,raw_asgi_app} --port PORT

(from the repository root), which serves the app in one process with
``hypercorn.trio.serve`` inside ``trio.run``: the same code path, Hypercorn
configuration and process layout as ``python -m trio_resilience serve``, and a
graceful exit 0 on SIGTERM or SIGINT. The apps also work with Hypercorn's own
command line, which runs them in a spawned worker process under a supervisor::

    python -m hypercorn --worker-class trio --bind 127.0.0.1:PORT \\
        benchmarks._baselines:quart_app
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart_trio import QuartTrio

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# -- (b) bare Quart-Trio ---------------------------------------------------------

quart_app = QuartTrio(__name__)


@quart_app.get("/msg")
async def message() -> dict[str, str]:
    return {"message_id": str(uuid.uuid4())}


# -- (c) raw ASGI, no framework ------------------------------------------------------

_JSON_HEADERS = [(b"content-type", b"application/json")]
_NOT_FOUND = b'{"detail": "Not Found"}'


async def raw_asgi_app(scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /msg`` answers a new UUID as JSON; anything else is a JSON 404."""
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET" and scope["path"] == "/msg":
        status = 200
        body = json.dumps(
            {"message_id": str(uuid.uuid4())}, separators=(",", ":")
        ).encode()
    else:
        status, body = 404, _NOT_FOUND
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- serving ---------------------------------------------------------------------

APPS: dict[str, Any] = {"quart_app": quart_app, "raw_asgi_app": raw_asgi_app}


def hypercorn_config(host: str, port: int) -> Config:
    """What `trio_resilience.server.hypercorn_config` sets, minus logging."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = 10.0
    config.accesslog = None
    return config


async def wait_for_shutdown_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve one baseline app with Hypercorn's trio worker."
    )
    parser.add_argument("app", choices=sorted(APPS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    config = hypercorn_config(args.host, args.port)
    trio.run(
        partial(
            serve,
            APPS[args.app],
            config,
            shutdown_trigger=wait_for_shutdown_signal,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
