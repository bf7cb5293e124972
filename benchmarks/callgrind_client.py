"""Instructions per GET for ResilientClient (with and without ClientMetrics) and raw
httpx, counted by callgrind.

Run (needs valgrind and the bench extra)::

    python benchmarks/callgrind_client.py [--calls 1000]

Starts the raw ASGI app of ``_baselines.py`` on uvicorn, then runs each client
under ``valgrind --tool=callgrind`` twice, making 200 and 200 + ``--calls`` GETs,
and reports the difference per call: start-up and imports cancel out. Instruction
counts do not depend on what else the machine is doing, so they compare code where
calls/s on a shared machine drift.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _common import HOST, callgrind_per_operation, uvicorn_server

CLIENT = """
import sys, trio
base, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
async def main():
    if kind.startswith("resilient"):
        from trio_resilience import ClientConfig, ResilientClient
        from trio_resilience.metrics import ClientMetrics
        metrics = ClientMetrics() if kind == "resilient_metrics" else None
        client = ResilientClient(ClientConfig(base_url=base), metrics=metrics)
    else:
        import httpx
        client = httpx.AsyncClient(base_url=base, headers={"User-Agent": "x"})
    async with client:
        for _ in range(n):
            await client.get("/msg")
trio.run(main)
"""
BASE_CALLS = 200


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args(argv)
    with (
        uvicorn_server("benchmarks._baselines:raw_asgi_app") as server,
        tempfile.TemporaryDirectory() as tmp,
    ):
        script = Path(tmp) / "client.py"
        script.write_text(CLIENT)
        base_url = f"http://{HOST}:{server.port}"
        per_call = {}
        for kind in ("resilient", "resilient_metrics", "httpx"):
            per_call[kind] = callgrind_per_operation(
                [sys.executable, str(script), base_url, kind],
                BASE_CALLS,
                args.calls,
            )
            print(f"{kind:<17} {per_call[kind] / 1000:8.0f}k instructions per GET")
    print(f"ratio httpx / resilient: {per_call['httpx'] / per_call['resilient']:.2f}")
    metered = per_call["resilient_metrics"] - per_call["resilient"]
    print(
        f"ClientMetrics: {metered / 1000:+.1f}k instructions per GET"
        f" ({metered / per_call['resilient']:+.1%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
