"""How the server ends connections and itself: the figures for issue 9, items 1 and 2.

Prints, for the server the current ``trio_resilience`` import resolves to:

* seconds for ``python -m trio_resilience serve`` to exit on SIGTERM with 1 and with
  20 idle keep-alive connections open (default settings, grace period 10 s);
* seconds from the end of a ``Connection: close`` response (HTTP/1.1) and of an
  HTTP/1.0 response to EOF, waiting at most 10 s;
* what an in-flight ``GET /msg?delay=1000`` gets when ``serve_in_background``'s block
  exits, and when.

Run ``python benchmarks/lifecycle_server.py``; for the code before issue 9,
``PYTHONPATH=/tmp/before python benchmarks/lifecycle_server.py``. Raw sockets
throughout, so no client library hides what the connection does. No assertions.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import trio

EOF_CAP = 10.0
EXIT_CAP = 30.0
_RUNNING = re.compile(rb"Running on http://([\d.]+):(\d+)")
KEEP_ALIVE = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"


def read_response(sock: socket.socket) -> bytes:
    """One whole response (headers and Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"EOF before a whole response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    found = re.search(rb"(?i)content-length: *(\d+)", head)
    length = int(found.group(1)) if found else 0
    while len(body) < length:
        body += sock.recv(65536)
    return head


def seconds_to_eof(sock: socket.socket) -> float | None:
    """Seconds until the peer closes ``sock``; None if it stays open for EOF_CAP."""
    start = time.perf_counter()
    sock.settimeout(EOF_CAP)
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return time.perf_counter() - start


@contextlib.contextmanager
def running_cli() -> Iterator[tuple[subprocess.Popen[bytes], tuple[str, int]]]:
    """The command line server on a free port, once it listens; killed if still
    running afterwards. Its output goes to a file, read for the address."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "trio_resilience", "serve", "--port", "0"],
            stdout=log,
            cwd=tempfile.gettempdir(),  # not the repository: -m would import from it
        )
        try:
            deadline = time.monotonic() + 30
            while not (found := _RUNNING.search(log.read())):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("the server did not start listening")
                time.sleep(0.05)
                log.seek(0)
            yield process, (found.group(1).decode(), int(found.group(2)))
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()


def request(address: tuple[str, int], raw: bytes) -> socket.socket:
    """A new connection to ``address`` that has sent ``raw`` and read the response."""
    sock = socket.create_connection(address)
    sock.sendall(raw)
    read_response(sock)
    return sock


def exit_seconds(idle: int) -> str:
    with running_cli() as (process, address):
        sockets = [request(address, KEEP_ALIVE) for _ in range(idle)]
        start = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(EXIT_CAP)
        except subprocess.TimeoutExpired:
            return f"no exit within {EXIT_CAP:.0f} s"
        finally:
            for sock in sockets:
                sock.close()
        return f"{time.perf_counter() - start:.2f} s (exit code {code})"


def eof_seconds() -> dict[str, str]:
    requests = {
        "Connection: close": KEEP_ALIVE.replace(
            b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"
        ),
        "HTTP/1.0": b"GET /health HTTP/1.0\r\n\r\n",
    }
    results = {}
    with running_cli() as (process, address):
        for name, raw in requests.items():
            with request(address, raw) as sock:
                seconds = seconds_to_eof(sock)
            results[name] = (
                f"none within {EOF_CAP:.0f} s"
                if seconds is None
                else f"{seconds:.3f} s"
            )
        process.send_signal(signal.SIGTERM)
    return results


async def in_flight_at_block_exit() -> str:
    import structlog

    from trio_resilience.testing import serve_in_background

    structlog.configure(  # the in-process server's lines would clutter the report
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING)
    )

    outcome: list[str] = []
    exited_at: list[float] = []

    async def slow(port: int, sent: trio.Event) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET /msg?delay=1000 HTTP/1.1\r\nHost: b\r\n\r\n")
            sent.set()
            data = b""
            async for chunk in stream:
                data += chunk
                if b"\r\n\r\n" in data:
                    break
        if data:
            status = data.split(b"\r\n", 1)[0].decode()
            outcome.append(status)
        else:
            outcome.append("EOF, no response")
        outcome.append(f"{trio.current_time() - exited_at[0]:+.3f} s after the exit")

    async with trio.open_nursery() as nursery:
        async with serve_in_background() as base_url:
            sent = trio.Event()
            nursery.start_soon(slow, int(base_url.rsplit(":", 1)[1]), sent)
            await sent.wait()
            await trio.sleep(0.2)  # the request reaches its delay
            exited_at.append(trio.current_time())
        block_exit = trio.current_time() - exited_at[0]
    return f"{outcome[0]}, {outcome[1]}; the block took {block_exit:.3f} s to exit"


def main() -> None:
    import trio_resilience

    print(f"trio_resilience from {os.path.dirname(trio_resilience.__file__)}")
    for idle in (1, 20):
        print(f"SIGTERM, {idle:2d} idle keep-alive connection(s): {exit_seconds(idle)}")
    for name, figure in eof_seconds().items():
        print(f"EOF after a {name} response: {figure}")
    in_flight = trio.run(in_flight_at_block_exit)
    print(f"in-flight /msg?delay=1000 at block exit: {in_flight}")


if __name__ == "__main__":
    main()
