"""A slow (drip) body against the client's read timeout.

Run: ``python examples/fault_drip.py`` (starts its own server).

With ``drip_ms`` the server sends the status and headers at once, then the body a
byte at a time. httpx's read timeout bounds each wait for the next bytes, not the
whole response, so:

1. a drip whose bytes come further apart than the read timeout (30 s over a ~50
   byte body: one every ~0.6 s, timeout 0.3 s) raises ``httpx.ReadTimeout``; the
   client retries it (``APITimeoutError``) and the next attempt is served at once;
2. a drip whose bytes come often (0.4 s over the same body) never trips the
   0.3 s read timeout: the call succeeds, after the whole 0.4 s. To bound a call
   in all, put it under a Trio deadline (``trio.move_on_after``).
"""

from __future__ import annotations

import trio
from _fault_example import attempts, check, client, run, server

READ_TIMEOUT = 0.3


async def main() -> None:
    async with server() as (base_url, faults):
        rule = await faults.add(method="GET", path="/msg", drip_ms=30_000, times=1)
        async with client(base_url, read=READ_TIMEOUT) as http:
            response = await http.get("/msg")
            print(f"  client: got {response.status_code} {response.json()}")
            entries = await attempts(faults, "/msg", 2)
            seen = [(e["outcome"], e["fault"]) for e in entries]
            check(
                seen == [("client_closed", rule), ("ok", None)],
                f"expected a drip the client left, then a plain answer: {seen}",
            )
            print(f"slow drip: ReadTimeout after {READ_TIMEOUT}s, retried: 200")
            await faults.add(method="GET", path="/msg", drip_ms=400)
            started = trio.current_time()
            response = await http.get("/msg")
            took = trio.current_time() - started
            check(took >= 0.4, f"a 400 ms drip arrived whole in {took:.3f}s")
            print(f"fast drip: {response.status_code} after {took:.2f}s in all,")
            print(f"  no read timeout ({READ_TIMEOUT}s per read, not per response)")
            with trio.move_on_after(0.2) as deadline:
                await http.get("/msg")
            check(deadline.cancelled_caught, "the 0.2 s deadline did not end it")
            print("under trio.move_on_after(0.2) the same call is cut at 0.2s")


if __name__ == "__main__":
    run(main)
