"""A truncated body (half of what ``Content-Length`` promised): the client retries.

Run: ``python examples/fault_truncate.py`` (starts its own server).

The server sends the route's status and headers, half the body, then closes the
connection. httpx raises ``httpx.RemoteProtocolError`` ("peer closed connection
without sending complete message body"); the client maps it to
``APIConnectionError`` and retries. The journal shows the route answered 200 both
times, the first one ``truncated``.
"""

from __future__ import annotations

from _fault_example import attempts, check, client, run, server


async def main() -> None:
    async with server() as (base_url, faults):
        rule = await faults.add(method="GET", path="/msg", truncate=True, times=1)
        async with client(base_url) as http:
            response = await http.get("/msg")
        print(f"  client: got {response.status_code} {response.json()}")
        entries = await attempts(faults, "/msg", 2)
        seen = [(e["status"], e["outcome"], e["fault"]) for e in entries]
        check(
            seen == [(200, "truncated", rule), (200, "ok", None)],
            f"expected a truncated 200, then a whole one: {seen}",
        )
        print("truncated body on attempt 1, retried: whole 200 on attempt 2")


if __name__ == "__main__":
    run(main)
