"""What a test server holds for what clients send: its RSS before and after.

Each scenario starts its own server (``python -m trio_resilience serve --port 0``,
from whichever tree ``PYTHONPATH`` names), reads ``VmRSS`` from
``/proc/PID/status`` around the load, and prints one JSON line::

    python benchmarks/memory_bounds.py jobs                          # this tree
    PYTHONPATH=/tmp/before python benchmarks/memory_bounds.py jobs   # another one
    python benchmarks/memory_bounds.py all --count 10000 --json out.json

(``PYTHONPATH`` must be absolute: the server runs in an empty directory.)

Scenarios (issue 10's reproductions):

* ``jobs``: 30 ``echo`` jobs of ``--job-bytes`` (8 MB; 1000000 fits under the 1 MiB
  body limit), then ``GET /api/v1/jobs``: the statuses, RSS, the list's size and
  time, and ``/health``'s latency when asked 50 ms into the list.
* ``items``: ``--count`` POST /api/v1/items (100k by default, each keyed), then the
  items held, a 1000-item page (all items, before pagination) and /health's p99
  while another client lists such pages.
* ``msg``: ``--count`` GET /msg, each with a new ``X-Request-ID``.

Linux only (``/proc``). The numbers are for the issue notes, never for tests.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx

RUNNING = re.compile(r"Running on (http://[\d.]+:\d+)")
JSON_HEADERS = {"Content-Type": "application/json"}
THREADS = 8
Result = dict[str, Any]
Rss = Callable[[], float]


@contextmanager
def server() -> Iterator[tuple[str, int]]:
    """A server subprocess: yields (base URL, pid); its output is drained.

    It runs in an empty directory: ``-m`` puts the working directory first on
    ``sys.path`` (a checkout there would shadow ``PYTHONPATH``), and no ``.env``.
    """
    command = [sys.executable, "-m", "trio_resilience", "serve", "--port", "0"]
    empty = tempfile.mkdtemp()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=empty
    )
    assert process.stdout is not None
    found: list[str] = []
    ready = threading.Event()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if not found and (match := RUNNING.search(line)):
                found.append(match.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        if not ready.wait(30) or not found:
            raise RuntimeError("the server did not start")
        yield found[0], process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.rmdir(empty)


def rss_mib(pid: int) -> float:
    """The process's resident set size, in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for {pid}")


def in_threads(
    base_url: str, count: int, request: Callable[[httpx.Client, int], int]
) -> dict[str, int]:
    """``request(client, n)`` for n in range(count) on THREADS keep-alive clients;
    how many of each status (or error) came back."""

    def run(part: range) -> collections.Counter[str]:
        seen: collections.Counter[str] = collections.Counter()
        with httpx.Client(base_url=base_url, timeout=60) as client:
            for n in part:
                try:
                    seen[str(request(client, n))] += 1
                except httpx.TransportError as error:
                    seen[type(error).__name__] += 1
        return seen

    parts = [range(i, count, THREADS) for i in range(THREADS)]
    with ThreadPoolExecutor(THREADS) as pool:
        results = pool.map(run, parts)
    return dict(sum(results, collections.Counter()))


def timed_list(client: httpx.Client, path: str) -> dict[str, Any]:
    """GET ``path`` streamed (bytes counted, not kept), with /health timed while
    the list is being served."""
    health: list[float] = []

    def probe() -> None:
        time.sleep(0.05)  # let the list request reach the server first
        with httpx.Client(base_url=str(client.base_url), timeout=60) as other:
            start = time.perf_counter()
            other.get("/health")
            health.append(time.perf_counter() - start)

    prober = threading.Thread(target=probe)
    start = time.perf_counter()
    prober.start()
    size = 0
    with client.stream("GET", path) as response:
        for chunk in response.iter_bytes():
            size += len(chunk)
    elapsed = time.perf_counter() - start
    prober.join()
    return {
        "list_status": response.status_code,
        "list_bytes": size,
        "list_seconds": round(elapsed, 3),
        "health_seconds_during_list": round(health[0], 3),
    }


def scenario_jobs(url: str, rss: Rss, args: argparse.Namespace) -> Result:
    """30 echo jobs of ``--job-bytes`` (8 MB) each, then the job list."""
    body = json.dumps({"type": "echo", "payload": {"blob": "x" * args.job_bytes}})
    statuses: collections.Counter[str] = collections.Counter()
    accepted: list[str] = []
    with httpx.Client(base_url=url, timeout=120) as client:
        for _ in range(30):
            try:
                answer = client.post("/api/v1/jobs", content=body, headers=JSON_HEADERS)
                statuses[str(answer.status_code)] += 1
                if answer.status_code == 202:
                    accepted.append(answer.headers["Location"])
            except httpx.TransportError as error:  # refused before the body was read
                statuses[type(error).__name__] += 1
        deadline = time.monotonic() + 60
        while accepted and time.monotonic() < deadline:  # until the last one ran
            if client.get(accepted[-1]).json()["status"] == "completed":
                break
            time.sleep(0.05)
        before_list = rss()
        return {
            "statuses": dict(statuses),
            "rss_before_list_mib": before_list,
            **timed_list(client, "/api/v1/jobs"),
        }


def scenario_items(url: str, rss: Rss, args: argparse.Namespace) -> Result:
    """``--count`` POST /api/v1/items, each with its own X-Request-ID; then how many
    items the server holds (following ``next`` where there is one), a full page
    (the whole list before pagination), and /health's p99 while another client
    lists such pages back to back."""
    item = json.dumps({"name": "item", "price": 1.5, "quantity": 1})
    statuses = in_threads(
        url,
        args.count,
        lambda client, n: (
            client.post(
                "/api/v1/items",
                content=item,
                headers={**JSON_HEADERS, "X-Request-ID": f"item-{n}"},
            ).status_code
        ),
    )
    page = "/api/v1/items?limit=1000"
    with httpx.Client(base_url=url, timeout=120) as client:
        held, path = 0, page
        while path:
            body = client.get(path).json()
            held, path = held + len(body["items"]), body.get("next")
        listed = timed_list(client, page)
    return {
        "statuses": statuses,
        "items_held": held,
        **listed,
        "health_ms_while_listing": health_while_listing(url, page),
    }


def health_while_listing(url: str, path: str, probes: int = 200) -> dict[str, float]:
    """/health latency (median, p99, max in ms) while another client GETs ``path``
    back to back (more listing threads measure this process's GIL as much as the
    server on a 2-core machine)."""
    stop = threading.Event()

    def lister() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            while not stop.is_set():
                client.get(path)

    listing = threading.Thread(target=lister)
    listing.start()
    times: list[float] = []
    with httpx.Client(base_url=url, timeout=60) as client:
        client.get("/health")
        for _ in range(probes):
            start = time.perf_counter()
            client.get("/health")
            times.append((time.perf_counter() - start) * 1000)
    stop.set()
    listing.join()
    times.sort()
    return {
        "median": round(times[len(times) // 2], 1),
        "p99": round(times[int(len(times) * 0.99) - 1], 1),
        "max": round(times[-1], 1),
    }


def scenario_msg(url: str, rss: Rss, args: argparse.Namespace) -> Result:
    """``--count`` GET /msg, each with a new X-Request-ID (a slot for the cache)."""
    statuses = in_threads(
        url,
        args.count,
        lambda client, n: (
            client.get("/msg", headers={"X-Request-ID": uuid.uuid4().hex}).status_code
        ),
    )
    return {"statuses": statuses}


SCENARIOS: dict[str, Callable[[str, Rss, argparse.Namespace], Result]] = {
    "jobs": scenario_jobs,
    "items": scenario_items,
    "msg": scenario_msg,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=[*SCENARIOS, "all"])
    parser.add_argument("--count", type=int, default=100_000, help="items / msg")
    parser.add_argument("--job-bytes", type=int, default=8_000_000, help="jobs")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    tree = os.environ.get("PYTHONPATH") or "this tree"
    results = []
    for name in list(SCENARIOS) if args.scenario == "all" else [args.scenario]:
        with server() as (url, pid):
            httpx.get(f"{url}/health")  # warm up: imports, first request
            result = {"scenario": name, "tree": tree, "rss_before_mib": rss_mib(pid)}
            result.update(SCENARIOS[name](url, lambda: rss_mib(pid), args))
            result["rss_after_mib"] = rss_mib(pid)
        print(json.dumps(result), flush=True)
        results.append(result)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
