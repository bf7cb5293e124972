"""Instructions per ``GET /msg`` through the whole test server app, metrics on and
off, counted by callgrind.

Run (needs valgrind)::

    python benchmarks/callgrind_server.py [--requests 500]

In process, as ``server_layers.py`` drives it (every layer, INFO JSON log to a
file, no sockets): each setting runs under ``valgrind --tool=callgrind`` twice,
with 100 and 100 + ``--requests`` requests, and the difference per request is
reported, so start-up and imports cancel out. Instruction counts do not depend on
what else the machine is doing: the metrics' cost, which calls/s on a shared
machine cannot tell from noise, shows here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from _common import callgrind_per_operation

SERVER = """
import sys, tempfile, trio
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from server_layers import drive
from trio_resilience.server import ServerSettings, configure_logging, create_app
enabled, requests = sys.argv[1] == "on", int(sys.argv[3])
with tempfile.TemporaryDirectory() as tmp:
    log = Path(tmp) / "server.log"
    configure_logging(level="INFO", fmt="json", file=log)
    settings = ServerSettings(
        log_level="INFO", log_format="json", log_file=log, metrics_enabled=enabled
    )
    async def main():
        app = create_app(settings)
        async with app.test_app():
            await drive(app.asgi_app, requests)
    trio.run(main)
"""
BASE_REQUESTS = 100


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args(argv)
    here = str(Path(__file__).resolve().parent)
    per_request = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "server.py"
        script.write_text(SERVER)
        for setting in ("on", "off"):
            per_request[setting] = callgrind_per_operation(
                [sys.executable, str(script), setting, here],
                BASE_REQUESTS,
                args.requests,
            )
            print(
                f"metrics {setting:<3} {per_request[setting] / 1000:8.0f}k"
                " instructions per GET /msg"
            )
    extra = per_request["on"] - per_request["off"]
    print(
        f"metrics cost {extra / 1000:+.1f}k instructions per request"
        f" ({extra / per_request['off']:+.1%}; target: at most +5%)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
