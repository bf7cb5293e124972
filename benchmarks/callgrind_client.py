"""Instructions per GET for ResilientClient and raw httpx, counted by callgrind.

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
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _common import HOST, uvicorn_server

CLIENT = """
import sys, trio
base, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
async def main():
    if kind == "resilient":
        from trio_resilience import ClientConfig, ResilientClient
        client = ResilientClient(ClientConfig(base_url=base))
    else:
        import httpx
        client = httpx.AsyncClient(base_url=base, headers={"User-Agent": "x"})
    async with client:
        for _ in range(n):
            await client.get("/msg")
trio.run(main)
"""
BASE_CALLS = 200


def instructions(script: Path, base_url: str, calls: int, kind: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        command += [sys.executable, str(script), base_url, str(calls), kind]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    found = re.search(r"refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(found.group(1).replace(",", ""))


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
        for kind in ("resilient", "httpx"):
            low = instructions(script, base_url, BASE_CALLS, kind)
            high = instructions(script, base_url, BASE_CALLS + args.calls, kind)
            per_call[kind] = (high - low) / args.calls
            print(f"{kind:<10} {per_call[kind] / 1000:8.0f}k instructions per GET")
    print(f"ratio httpx / resilient: {per_call['httpx'] / per_call['resilient']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
