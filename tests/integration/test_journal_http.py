"""The request journal seen from a real client: attempts, their gaps, scopes."""

from __future__ import annotations

import itertools

import httpx

from trio_resilience import ClientConfig, ResilientClient, RetryConfig
from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background


async def test_journal_shows_a_clients_retries_and_their_gaps() -> None:
    """Three attempts of one call share a request id; gaps follow the backoff."""
    settings = ServerSettings(enable_docs=False)
    async with serve_in_background(settings) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as admin:
            await admin.post("/fail/count/2")
            config = ClientConfig(
                base_url=base_url,
                retry=RetryConfig(max_attempts=3, min_wait_seconds=0.2, jitter=False),
            )
            async with ResilientClient(config) as client:
                response = await client.get(
                    "/msg", headers={"X-Fault-Scope": "retries"}, request_id="call-1"
                )
            assert response.status_code == 200
            seen = (await admin.get("/requests?scope=retries")).json()["requests"]
            assert [e["status"] for e in seen] == [500, 500, 200]
            assert {e["request_id"] for e in seen} == {"call-1"}
            gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(seen)]
            assert gaps[0] >= 0.2
            assert gaps[1] >= 0.4


async def test_scopes_do_not_see_each_other() -> None:
    """Two scopes on one server read and clear only their own entries."""
    async with serve_in_background(ServerSettings(enable_docs=False)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            for scope in ("a", "b", "a"):
                await client.get("/health", headers={"X-Fault-Scope": scope})
            assert len((await client.get("/requests?scope=a")).json()["requests"]) == 2
            assert (await client.delete("/requests?scope=a")).status_code == 204
            assert (await client.get("/requests?scope=a")).json()["requests"] == []
            kept = (await client.get("/requests?scope=b")).json()["requests"]
            assert [e["path"] for e in kept] == ["/health"]


async def test_journal_is_bounded_by_its_setting() -> None:
    """SERVER_JOURNAL_SIZE entries at most, the newest kept."""
    settings = ServerSettings(enable_docs=False, journal_size=3)
    async with serve_in_background(settings) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as client:
            for n in range(6):
                await client.get(f"/msg?delay={n}", headers={"X-Fault-Scope": "s"})
            seen = (await client.get("/requests")).json()["requests"]
    # the listing request itself is recorded only once it has ended
    assert [e["query"] for e in seen] == ["delay=3", "delay=4", "delay=5"]
