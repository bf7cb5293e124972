"""Where the test server's time per request goes, layer by layer, without sockets.

Run::

    python benchmarks/server_layers.py [--requests N] [--rounds R]

``bench_server.py`` measures whole servers over HTTP; this script drives the ASGI
callables directly (one ``GET /msg`` after another, a receive that yields the empty
body once, a send that drops every message), so Hypercorn, sockets and the load
generator are out of the picture and what is left is the app's own work. Two tables:

* each middleware layer alone around a do-nothing app (its own cost in µs);
* whole stacks around the real app: the Quart app without middleware, with the
  connection layer, with the request log, every layer without fault rules (with
  the Prometheus metrics, as served, and with them off: ``metrics_enabled=False``),
  every layer with 100 live fault rules none of which matches, and the bare
  Quart-Trio baseline of ``bench_server.py`` (``benchmarks/_baselines.py``).

Every stack is measured once per round, rounds interleaved; the figure is the
minimum over the rounds (the least disturbed), with the median beside it. The
request log renders JSON lines to a file in a temporary directory, as the
benchmark server does. Compare the figures with each other, not across machines.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import trio
from _baselines import quart_app
from _common import non_matching_fault_rules

from trio_resilience.server import ServerSettings, configure_logging, create_app
from trio_resilience.server._connections import ConnectionMiddleware
from trio_resilience.server._fault_schema import FaultRuleIn
from trio_resilience.server._guards import GuardMiddleware, GuardPolicy
from trio_resilience.server._journal import RequestJournal
from trio_resilience.server._middleware import (
    ConcurrencyMiddleware,
    ErrorHandlingMiddleware,
    RequestLoggingMiddleware,
    TimeoutMiddleware,
    wrap,
)

App = Callable[..., Any]
SCOPE = {
    "type": "http",
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/msg",
    "raw_path": b"/msg",
    "query_string": b"",
    "root_path": "",
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk")],
    "client": ("127.0.0.1", 50000),
    "server": ("127.0.0.1", 8000),
    "extensions": {},
}


async def drive(app: App, requests: int) -> float:
    """µs per request of ``requests`` sequential ``GET /msg`` through ``app``."""

    async def send(message: Any) -> None:
        pass

    start = time.perf_counter()
    for _ in range(requests):
        await app(dict(SCOPE), empty_body(), send)
    return (time.perf_counter() - start) / requests * 1e6


def empty_body() -> Callable[[], Any]:
    """A receive for one request: its empty body, then nothing until cancelled."""
    pending = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Any:
        if not pending:
            await trio.sleep_forever()
        return pending.pop()

    return receive


async def nothing(scope: Any, receive: Any, send: Any) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}", "more_body": False})


def add_non_matching_rules(app: Any, count: int) -> None:
    """The rules of ``bench_server.py``'s ``ours_faulted``, added to ``app``."""
    for body in non_matching_fault_rules(count):
        app.state.plan.add(FaultRuleIn.model_validate(body).to_rule())


async def measure(
    stacks: dict[str, App], requests: int, rounds: int
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in stacks}
    for app in stacks.values():
        await drive(app, max(1, requests // 5))  # warm up
    for _ in range(rounds):
        for name, app in stacks.items():
            samples[name].append(await drive(app, requests))
    return samples


def table(title: str, samples: dict[str, list[float]]) -> list[str]:
    lines = [title, f"  {'':40} {'min':>8} {'median':>8}"]
    for name, values in samples.items():
        lines.append(
            f"  {name:40} {min(values):>6.1f}us {statistics.median(values):>6.1f}us"
        )
    return lines


async def run(requests: int, rounds: int, log_file: Path) -> list[str]:
    settings = ServerSettings(log_level="INFO", log_format="json", log_file=log_file)
    policy = GuardPolicy.from_settings(settings)
    layers = {
        "do-nothing app": nothing,
        "+ connection": ConnectionMiddleware(nothing),
        "+ connection, errors": ConnectionMiddleware(ErrorHandlingMiddleware(nothing)),
        "+ connection, request log": ConnectionMiddleware(
            RequestLoggingMiddleware(nothing, None)
        ),
        "+ connection, request log, journal": ConnectionMiddleware(
            RequestLoggingMiddleware(nothing, RequestJournal(1000))
        ),
        "+ connection, guards": ConnectionMiddleware(GuardMiddleware(nothing, policy)),
        "+ connection, timeout": ConnectionMiddleware(TimeoutMiddleware(nothing, 30)),
        "+ connection, concurrency": ConnectionMiddleware(
            ConcurrencyMiddleware(nothing, trio.CapacityLimiter(50), None)
        ),
    }
    layer_samples = await measure(layers, requests, rounds)

    metrics_off = settings.model_copy(update={"metrics_enabled": False})

    def stack(name: str) -> Any:
        app = create_app(metrics_off if name.endswith("metrics off") else settings)
        inner = type(app).asgi_app.__get__(app)  # the Quart app, unwrapped
        state = app.state
        if name == "app alone":
            app.asgi_app = inner
        elif name == "app + connection":
            app.asgi_app = ConnectionMiddleware(inner)
        elif name == "app + connection, request log":
            app.asgi_app = ConnectionMiddleware(
                ErrorHandlingMiddleware(RequestLoggingMiddleware(inner, state.journal))
            )
        elif name.startswith("every layer, no fault rules"):
            app.asgi_app = wrap(
                inner,
                timeout=30,
                limiter=state.limiter,
                settings=settings,
                journal=state.journal,
                faults=None,
                metrics=state.metrics,  # None with the metrics off
            )
        else:  # every layer as served, plus 100 rules that never match
            add_non_matching_rules(app, 100)
        return app

    names = [
        "app alone",
        "app + connection",
        "app + connection, request log",
        "every layer, no fault rules",
        "every layer, no fault rules, metrics off",
        "every layer, 100 fault rules",
    ]
    async with AsyncExitStack() as running:
        apps: dict[str, App] = {}
        for name in names:
            app = stack(name)
            await running.enter_async_context(app.test_app())
            apps[name] = app
        await running.enter_async_context(quart_app.test_app())
        apps["bare Quart-Trio (baseline)"] = quart_app
        app_samples = await measure(apps, requests, rounds)
    bare = min(app_samples["bare Quart-Trio (baseline)"])
    served = min(app_samples["every layer, 100 fault rules"])
    plain = min(app_samples["every layer, no fault rules"])
    no_metrics = min(app_samples["every layer, no fault rules, metrics off"])
    return [
        f"GET /msg in process, {requests} requests x {rounds} rounds per stack",
        "",
        *table("Each layer around a do-nothing app:", layer_samples),
        "",
        *table("Stacks around the real app:", app_samples),
        "",
        f"bare / every layer, 100 rules = {bare / served:.3f} (in-process req/s ratio)",
        f"100 rules cost {served / plain - 1:+.1%} against none",
        f"metrics cost {plain - no_metrics:+.1f}us per request (every layer, no rules)",
        f"on / off = {no_metrics / plain:.3f} (in-process req/s ratio, target >= 0.95)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, metavar="N")
    parser.add_argument("--rounds", type=int, default=9, metavar="R")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="server_layers-") as tmp:
        log_file = Path(tmp) / "server.log"
        configure_logging(level="INFO", fmt="json", file=log_file)
        lines = trio.run(run, args.requests, args.rounds, log_file)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
