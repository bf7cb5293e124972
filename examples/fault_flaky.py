"""A flaky route (503 one time in three, by chance) whose failures repeat exactly.

Run: ``python examples/fault_flaky.py`` (starts its own server).

A rule with ``probability`` fails each matching request by the draw of its own
generator; with a ``seed`` the same requests in the same order fail the same way,
so a flaky scenario can be replayed. The client makes 12 calls (each retried up
to 4 attempts) twice, under a fresh rule with the same seed each time: every call
succeeds, and the journal shows the same statuses in the same order both times.
"""

from __future__ import annotations

from _fault_example import check, client, run, server

from trio_resilience.testing import FaultClient

CALLS = 12


async def statuses(base_url: str, faults: FaultClient) -> list[int]:
    await faults.clear()
    await faults.clear_requests()
    await faults.add(path="/msg", status=503, probability=0.3, seed=7)
    async with client(base_url, attempts=4, wait=0.005, quiet=True) as http:
        for _ in range(CALLS):
            await http.get("/msg")
    return [e["status"] for e in await faults.requests() if e["path"] == "/msg"]


async def main() -> None:
    async with server() as (base_url, faults):
        first = await statuses(base_url, faults)
        second = await statuses(base_url, faults)
        print(f"first:  {first}")
        print(f"second: {second}")
        check(first == second, "the same seed gave different failures")
        check(503 in first, "the rule never fired")
        check(first.count(200) == CALLS, f"not every call succeeded: {first}")
        print(f"same sequence twice: {first.count(503)} failures, {CALLS} successes")


if __name__ == "__main__":
    run(main)
