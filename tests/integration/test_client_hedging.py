"""Hedging against the test server: the server sees two requests with one
request id and does the work once."""

from __future__ import annotations

import trio

from trio_resilience import ClientConfig, HedgingConfig, ResilientClient
from trio_resilience.testing import FaultClient


async def test_a_hedged_post_has_one_side_effect(
    resilience_server: str, resilience_faults: FaultClient
) -> None:
    """The first POST is held 2 s by a fault; the hedge, 0.2 s later, answers:
    the call returns in well under 2 s, the journal has two POSTs with one
    request id, and one item exists."""
    await resilience_faults.add(
        method="POST", path="/api/v1/items", delay_ms=2000, times=1
    )
    config = ClientConfig(base_url=resilience_server, hedging=HedgingConfig(0.2))
    async with ResilientClient(config) as client:
        started = trio.current_time()
        created = await client.post(
            "/api/v1/items", json={"name": "widget", "price": 3.5}, hedge=True
        )
        took = trio.current_time() - started
        assert created.status_code == 201, created.text
        assert took < 1.5
        listed = (await client.get("/api/v1/items")).json()["items"]
    assert [item["name"] for item in listed] == ["widget"]
    with trio.fail_after(5):
        while True:  # polled: the held request is journaled once it ends
            posts = [
                e
                for e in await resilience_faults.requests()
                if e["method"] == "POST" and e["path"] == "/api/v1/items"
            ]
            if len(posts) == 2:
                break
            await trio.sleep(0.05)
    assert len({e["request_id"] for e in posts}) == 1
