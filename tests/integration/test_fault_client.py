"""FaultClient and the resilience_faults fixture, against a real server."""

from __future__ import annotations

import httpx
import pytest

from trio_resilience.server import ServerSettings
from trio_resilience.testing import FaultClient, FaultRuleError, serve_in_background


async def test_the_fixture_adds_rules_and_reads_the_journal(
    resilience_server: str, resilience_faults: FaultClient
) -> None:
    rule_id = await resilience_faults.add(
        method="GET", path="/msg", status=503, retry_after=2, times=1
    )
    async with httpx.AsyncClient(base_url=resilience_server) as client:
        failed = await client.get("/msg")
        ok = await client.get("/msg")
    assert (failed.status_code, failed.headers["retry-after"]) == (503, "2")
    assert ok.status_code == 200
    [rule] = await resilience_faults.rules()
    assert (rule["id"], rule["fired"], rule["live"]) == (rule_id, 1, False)
    seen = [
        (e["path"], e["status"], e["fault"])
        for e in await resilience_faults.requests()
        if e["path"] == "/msg"
    ]
    assert seen == [("/msg", 503, rule_id), ("/msg", 200, None)]
    assert len(await resilience_faults.requests(limit=1)) == 1
    assert await resilience_faults.remove(rule_id) is True
    assert await resilience_faults.remove(rule_id) is False
    await resilience_faults.clear_requests()
    # Only the DELETE itself, journaled once it ended.
    left = await resilience_faults.requests()
    assert [(e["method"], e["path"]) for e in left] == [("DELETE", "/requests")]


async def test_each_action_reaches_the_server(resilience_faults: FaultClient) -> None:
    actions: list[dict[str, object]] = [
        {"status": 500, "body": {"x": 1}},
        {"delay_ms": 5, "jitter_ms": 5},
        {"reset": True},
        {"close": True},
        {"hang": True},
        {"drip_ms": 10},
        {"truncate": True},
        {"commit_then_fail": 502},
    ]
    for action in actions:
        await resilience_faults.add(path="/nowhere", **action)  # type: ignore[arg-type]
    stored = [rule["action"] for rule in await resilience_faults.rules()]
    assert [next(iter(a)) for a in stored] == [next(iter(a)) for a in actions]
    assert stored[0] == {"status": 500, "retry_after": None, "body": {"x": 1}}
    assert stored[1] == {"delay_ms": 5, "jitter_ms": 5}


async def test_one_action_exactly(resilience_faults: FaultClient) -> None:
    with pytest.raises(ValueError, match=r"got none$"):
        await resilience_faults.add(path="/msg")
    with pytest.raises(ValueError, match=r"got \['status', 'reset'\]$"):
        await resilience_faults.add(status=500, reset=True)


async def test_a_refused_rule_raises_with_the_servers_reason(
    resilience_faults: FaultClient,
) -> None:
    with pytest.raises(FaultRuleError) as refused:
        await resilience_faults.add(path="/health", status=500)
    assert refused.value.status_code == 422
    assert refused.value.detail[0]["loc"] == ["body", "match", "path"]


async def test_scoped_clients_share_a_server_without_seeing_each_other() -> None:
    async with serve_in_background(ServerSettings(enable_docs=False)) as url:
        a, b = FaultClient(url, scope="a"), FaultClient(url, scope="b")
        await a.add(path="/msg", status=500)
        await b.add(path="/msg", status=502)
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/msg", headers=a.headers)).status_code == 500
            assert (await client.get("/msg", headers=b.headers)).status_code == 502
            assert (await client.get("/msg")).status_code == 200
        assert [r["action"]["status"] for r in await a.rules()] == [500]
        assert [e["status"] for e in await a.requests()] == [500]
        await a.clear()
        assert await a.rules() == []
        assert len(await b.rules()) == 1
        assert FaultClient(url).headers == {}


async def test_a_control_token_is_sent_when_given() -> None:
    settings = ServerSettings(enable_docs=False, control_token="s3cret")
    async with serve_in_background(settings) as url:
        with pytest.raises(httpx.HTTPStatusError, match="401"):
            await FaultClient(url).add(status=500)
        faults = FaultClient(url + "/", token="s3cret")
        await faults.add(path="/msg", status=500)
        assert len(await faults.rules()) == 1
        await faults.clear()
