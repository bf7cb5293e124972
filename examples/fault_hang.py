"""A request the server never answers: the client's read timeout ends it, then it
retries.

Run: ``python examples/fault_hang.py`` (starts its own server).

With ``hang`` the server reads the request and sends nothing. The client's read
timeout (0.3 s here; 30 s by default) raises ``httpx.ReadTimeout``, mapped to
``APITimeoutError`` and retried. The server journals the hung request when the
client hangs up: status 499, outcome ``client_closed``.
"""

from __future__ import annotations

from _fault_example import attempts, check, client, run, server

READ_TIMEOUT = 0.3


async def main() -> None:
    async with server() as (base_url, faults):
        rule = await faults.add(method="GET", path="/msg", hang=True, times=1)
        async with client(base_url, read=READ_TIMEOUT) as http:
            response = await http.get("/msg")
        print(f"  client: got {response.status_code} {response.json()}")
        entries = await attempts(faults, "/msg", 2)
        seen = [(e["status"], e["outcome"], e["fault"]) for e in entries]
        check(
            seen == [(499, "client_closed", rule), (200, "ok", None)],
            f"expected a hung request the client left, then a 200: {seen}",
        )
        print(f"hung attempt ended by the {READ_TIMEOUT}s read timeout, retried: 200")


if __name__ == "__main__":
    run(main)
