"""A connection reset (TCP RST, no response): the client retries.

Run: ``python examples/fault_reset.py`` (starts its own server).

httpx sees the reset as ``httpx.ReadError``; the client maps it to
``APIConnectionError``, which it retries. The journal shows the reset attempt
(no status, outcome ``reset``) and the one that succeeded.
"""

from __future__ import annotations

from _fault_example import attempts, check, client, run, server


async def main() -> None:
    async with server() as (base_url, faults):
        rule = await faults.add(method="GET", path="/msg", reset=True, times=1)
        async with client(base_url) as http:
            response = await http.get("/msg")
        print(f"  client: got {response.status_code} {response.json()}")
        entries = await attempts(faults, "/msg", 2)
        seen = [(e["status"], e["outcome"], e["fault"]) for e in entries]
        check(
            seen == [(None, "reset", rule), (200, "ok", None)],
            f"expected a reset, then a 200: {seen}",
        )
        print("reset on attempt 1, retried: 200 on attempt 2")


if __name__ == "__main__":
    run(main)
