"""A 503 with ``Retry-After``: the client waits as long as the server asked.

Run: ``python examples/fault_retry_after.py`` (starts its own server, about 1 s).

The rule answers the first ``GET /msg`` with ``503`` and ``Retry-After: 1``. The
client's own backoff is 0.02 s, so a gap of at least 1 s between the two arrivals
in the server's journal shows that the header replaced the backoff. (The client
caps a ``Retry-After`` at ``RetryConfig.max_wait_seconds``: keep that above it.)
"""

from __future__ import annotations

from _fault_example import attempts, check, client, run, server

RETRY_AFTER = 1


async def main() -> None:
    async with server() as (base_url, faults):
        rule = await faults.add(
            method="GET", path="/msg", status=503, retry_after=RETRY_AFTER, times=1
        )
        async with client(base_url, wait=0.02, max_wait=5) as http:
            response = await http.get("/msg")
        print(f"  client: got {response.status_code} {response.json()}")
        first, second = await attempts(faults, "/msg", 2)
        check(
            (first["status"], first["fault"], second["status"]) == (503, rule, 200),
            f"expected a 503 from rule {rule}, then a 200: {first}, {second}",
        )
        gap = second["at"] - first["at"]
        check(gap >= RETRY_AFTER, f"retried {gap:.3f}s after the 503, too early")
        print(f"gap between attempts: {gap:.3f}s >= Retry-After {RETRY_AFTER}s")


if __name__ == "__main__":
    run(main)
