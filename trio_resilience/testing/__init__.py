"""Run the test server inside your own tests.

``serve_in_background`` starts a real Hypercorn server on 127.0.0.1 and an ephemeral
port in a nursery it owns, and yields its base URL once it accepts connections::

    async with serve_in_background(ServerSettings(max_concurrency=5)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            await client.post("/fail/count/2")
            ...

`FaultClient` adds fault rules to a server and reads its request journal::

    faults = FaultClient(base_url)
    await faults.add(method="GET", path="/msg", status=503, retry_after=1, times=2)
    ...
    attempts = await faults.requests()
    metrics = await faults.metrics()    # GET /metrics, as a `MetricsSnapshot`

`retries_without_waiting()` makes every retry loop (the client's, `retry`,
`retry_context`) keep its attempts and skip its sleeps, like stamina's testing
mode::

    with retries_without_waiting():
        response = await client.get("/flaky")   # three attempts, no waiting

Installing the package also registers a pytest plugin with a ``resilience_server``
fixture (for pytest-trio) that does the same for one test, and a
``resilience_faults`` fixture: a `FaultClient` for that server.
"""

from .._retry import waits_skipped as retries_without_waiting
from ._faults import FaultClient as FaultClient
from ._faults import FaultRuleError as FaultRuleError
from ._metrics import MetricsSnapshot as MetricsSnapshot
from ._server import serve_in_background as serve_in_background

__all__ = [
    "FaultClient",
    "FaultRuleError",
    "MetricsSnapshot",
    "retries_without_waiting",
    "serve_in_background",
]
