"""The httpbin-style routes through Quart's test client, on virtual time.

Responses of at most a few body chunks only: Quart-Trio's test client deadlocks on
more than 10, so long streams and drips, and disconnects, are tested against a real
server in tests/integration/test_httpbin_http.py.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
from quart.testing import QuartClient
from werkzeug.datastructures import Headers

from trio_resilience.server import ServerSettings, create_app
from trio_resilience.server._drip import drip_slices
from trio_resilience.server._routes.httpbin import parse_status_choices


@asynccontextmanager
async def client_for(**settings: Any) -> AsyncIterator[QuartClient]:
    app = create_app(ServerSettings(**settings))
    async with app.test_app():
        yield app.test_client()


async def call(
    client: QuartClient, path: str, method: str = "GET", **kwargs: Any
) -> tuple[int, Any, Any]:
    """Status, parsed JSON body (None if none) and headers."""
    response = await client.open(path, method=method, **kwargs)
    data = await response.get_data()
    body = await response.get_json() if data else None
    return response.status_code, body, response.headers


def locations(body: Any) -> list[list[str]]:
    return [item["loc"] for item in body["detail"]]


# /status/{codes}


@pytest.mark.parametrize(
    ("code", "body"),
    [
        (200, {"status": 200}),
        (201, {"status": 201}),
        (299, {"status": 299}),
        (429, {"detail": "Too Many Requests"}),
        (503, {"detail": "Service Unavailable"}),
        (499, {"detail": "Bad Request"}),  # unregistered: its class's x00 phrase
        (599, {"detail": "Internal Server Error"}),
    ],
)
async def test_status_answers_the_code_with_its_body(
    autojump_clock: trio.testing.MockClock, code: int, body: dict[str, Any]
) -> None:
    """4xx and 5xx carry their reason phrase, other codes {"status": code}."""
    async with client_for() as client:
        status, answer, headers = await call(client, f"/status/{code}")
    assert (status, answer) == (code, body)
    assert headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
async def test_status_takes_every_method(
    autojump_clock: trio.testing.MockClock, method: str
) -> None:
    """Any method gets the chosen status; a JSON body is read and ignored."""
    async with client_for() as client:
        status, body, _ = await call(
            client, "/status/502", method, json={"ignored": True}
        )
    assert (status, body) == (502, {"detail": "Bad Gateway"})


@pytest.mark.parametrize("code", [204, 304])
async def test_status_without_content(
    autojump_clock: trio.testing.MockClock, code: int
) -> None:
    """204 and 304 have no body (and no Location for 304)."""
    async with client_for() as client:
        status, body, headers = await call(client, f"/status/{code}")
    assert (status, body) == (code, None)
    assert "Location" not in headers


@pytest.mark.parametrize(
    ("code", "name", "value"),
    [
        (301, "Location", "/anything"),
        (302, "Location", "/anything"),
        (307, "Location", "/anything"),
        (401, "WWW-Authenticate", 'Bearer realm="trio_resilience"'),
        (407, "Proxy-Authenticate", 'Bearer realm="trio_resilience"'),
        (405, "Allow", "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
    ],
)
async def test_status_brings_the_headers_its_code_requires(
    autojump_clock: trio.testing.MockClock, code: int, name: str, value: str
) -> None:
    async with client_for() as client:
        status, _, headers = await call(client, f"/status/{code}")
    assert status == code
    assert headers[name] == value


async def test_status_retry_after(autojump_clock: trio.testing.MockClock) -> None:
    """retry_after adds Retry-After, to any code."""
    async with client_for() as client:
        _, _, busy = await call(client, "/status/503?retry_after=7")
        _, _, fine = await call(client, "/status/204?retry_after=0")
        _, _, plain = await call(client, "/status/503")
    assert busy["Retry-After"] == "7"
    assert fine["Retry-After"] == "0"
    assert "Retry-After" not in plain


@pytest.mark.parametrize(
    "codes",
    [
        "600",
        "199",
        "100",
        "abc",
        "0503",
        "503,,200",
        "503,",
        "503:0",
        "503:-1",
        "503:1001",
        "503:1.5",
        "503:",
        "5e2",
        "503;200",
        ",".join(["503"] * 21),
    ],
)
async def test_bad_status_spec_is_422_naming_codes(
    autojump_clock: trio.testing.MockClock, codes: str
) -> None:
    async with client_for() as client:
        status, body, _ = await call(client, f"/status/{codes}")
    assert status == 422
    assert locations(body) == [["path", "codes"]]
    assert body["detail"][0]["msg"]


async def test_twenty_weighted_codes_are_accepted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    spec = ",".join(f"{code}:1000" for code in range(500, 520))
    async with client_for() as client:
        status, _, _ = await call(client, f"/status/{spec}")
    assert 500 <= status < 520


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("seed=-1", "seed"),
        ("seed=abc", "seed"),
        (f"seed={2**63}", "seed"),
        ("retry_after=-1", "retry_after"),
        ("retry_after=1.5", "retry_after"),
        ("retry_after=86401", "retry_after"),
        ("color=red", "color"),
    ],
)
async def test_bad_status_query_is_422(
    autojump_clock: trio.testing.MockClock, query: str, name: str
) -> None:
    async with client_for() as client:
        status, body, _ = await call(client, f"/status/503?{query}")
    assert status == 422
    assert locations(body) == [["query", name]]


async def test_same_seed_same_code(autojump_clock: trio.testing.MockClock) -> None:
    """With a seed the choice is random.Random(seed)'s, every time."""
    spec = "200,201,202,203,500,502,503,504"
    async with client_for() as client:
        for seed in range(20):
            first, _, _ = await call(client, f"/status/{spec}?seed={seed}")
            again, _, _ = await call(client, f"/status/{spec}?seed={seed}")
            codes = parse_status_choices(spec).codes
            expected = random.Random(seed).choices(codes, [1] * len(codes))[0]
            assert first == again == expected


def test_weighted_choice_follows_the_weights() -> None:
    """503:3,200:1 over 4,000 seeds: 503 three times as often (deterministic)."""
    choices = parse_status_choices("503:3,200:1")
    picked = [choices.choose(random.Random(seed)) for seed in range(4000)]
    assert set(picked) == {503, 200}
    assert 2850 <= picked.count(503) <= 3150  # expected 3000, sd 27


def test_weights_default_to_one_and_repeats_add_up() -> None:
    choices = parse_status_choices("503:3,200,503")
    assert (choices.codes, choices.weights) == ((503, 200, 503), (3, 1, 1))
    picked = [choices.choose(random.Random(seed)) for seed in range(4000)]
    assert 3050 <= picked.count(503) <= 3350  # 4 in 5: expected 3200, sd 25


async def test_unseeded_choice_picks_among_the_codes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with client_for() as client:
        seen = {(await call(client, "/status/500,502"))[0] for _ in range(100)}
    assert seen == {500, 502}  # both missing from 100 draws: 2**-99


# /redirect/{n}


async def test_redirect_counts_down_to_anything(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """/redirect/0, the end of a chain, answers as /anything."""
    async with client_for() as client:
        three = await client.get("/redirect/3")
        one = await client.get("/redirect/1")
        status, body, _ = await call(client, "/redirect/0?status=307")
    assert (three.status_code, three.headers["Location"]) == (302, "/redirect/2")
    assert (one.status_code, one.headers["Location"]) == (302, "/anything")
    assert await three.get_data() == b""
    assert status == 200
    assert (body["path"], body["args"]) == ("/redirect/0", {"status": "307"})


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
async def test_redirect_status_and_absolute_are_kept_on_each_hop(
    autojump_clock: trio.testing.MockClock, code: int
) -> None:
    async with client_for() as client:
        hop = await client.get(f"/redirect/2?status={code}&absolute=true")
        last = await client.post(
            f"/redirect/1?absolute=true&status={code}", json={"a": 1}
        )
    assert hop.status_code == code
    assert hop.headers["Location"] == (
        f"http://localhost/redirect/1?absolute=true&status={code}"
    )
    assert last.status_code == code
    assert last.headers["Location"] == "http://localhost/anything"


@pytest.mark.parametrize(
    ("path", "loc"),
    [
        ("/redirect/-1", ["path", "n"]),
        ("/redirect/101", ["path", "n"]),
        ("/redirect/abc", ["path", "n"]),
        ("/redirect/2?status=300", ["query", "status"]),
        ("/redirect/2?status=304", ["query", "status"]),
        ("/redirect/2?absolute=maybe", ["query", "absolute"]),
        ("/redirect/2?to=x", ["query", "to"]),
    ],
)
async def test_bad_redirect_is_422(
    autojump_clock: trio.testing.MockClock, path: str, loc: list[str]
) -> None:
    async with client_for() as client:
        status, body, _ = await call(client, path)
    assert status == 422
    assert locations(body) == [loc]


# /anything, /headers


async def test_anything_echoes_the_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """args: single values as strings, repeated ones as lists; headers joined."""
    headers = Headers([("X-Tag", "a"), ("X-Tag", "b"), ("Cookie", "a=1")])
    headers.add("Cookie", "b=2")
    async with client_for() as client:
        status, body, _ = await call(
            client, "/anything/deep/path?x=1&x=2&y=3", "PATCH", headers=headers
        )
    assert status == 200
    assert body["method"] == "PATCH"
    assert body["path"] == "/anything/deep/path"
    assert body["args"] == {"x": ["1", "2"], "y": "3"}
    assert body["headers"]["X-Tag"] == "a, b"
    assert body["headers"]["Cookie"] == "a=1; b=2"
    assert (body["json"], body["data"]) == (None, "")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "GET"])
async def test_anything_echoes_a_json_body(
    autojump_clock: trio.testing.MockClock, method: str
) -> None:
    async with client_for() as client:
        status, body, _ = await call(
            client, "/anything", method, json={"a": [1, 2.5, None], "b": "é"}
        )
    assert status == 200
    assert body["method"] == method
    assert body["json"] == {"a": [1, 2.5, None], "b": "é"}
    assert body["headers"]["Content-Type"] == "application/json"
    assert '"a"' in body["data"]


async def test_anything_shows_a_body_not_declared_json_as_text(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A DELETE may carry any body (the guards check POST, PUT and PATCH only)."""
    async with client_for() as client:
        status, body, _ = await call(
            client,
            "/anything",
            "DELETE",
            data=b'{"not": "parsed"} \xff',
            headers={"Content-Type": "text/plain"},
        )
    assert status == 200
    assert body["json"] is None
    assert body["data"] == '{"not": "parsed"} \ufffd'


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (b'{"a": ', ["body"]),
        (b"NaN", ["body"]),
        (b'{"a": [1, Infinity]}', ["body", "a", "1"]),
        (b'{"a": 1e400}', ["body", "a"]),
        (b'"\xff"', ["body"]),
    ],
)
async def test_anything_refuses_json_that_is_not(
    autojump_clock: trio.testing.MockClock, data: bytes, loc: list[Any]
) -> None:
    async with client_for() as client:
        status, body, _ = await call(
            client,
            "/anything",
            "POST",
            data=data,
            headers={"Content-Type": "application/json"},
        )
    assert status == 422
    assert [[str(part) for part in found] for found in locations(body)] == [loc]


async def test_headers_echoes_the_headers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with client_for() as client:
        status, body, _ = await call(client, "/headers", headers={"X-Probe": "1"})
    assert status == 200
    assert list(body) == ["headers"]
    assert body["headers"]["X-Probe"] == "1"


# /delay/{seconds}


async def test_delay_waits_then_echoes(autojump_clock: trio.testing.MockClock) -> None:
    async with client_for() as client:
        status, body, _ = await call(client, "/delay/1.5?x=1", "POST", json=[1])
    assert trio.current_time() == 1.5
    assert status == 200
    assert (body["method"], body["args"], body["json"]) == ("POST", {"x": "1"}, [1])


async def test_delay_meets_the_request_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A delay reaching request_timeout is a 504 at request_timeout."""
    async with client_for(request_timeout=2) as client:
        status, body, _ = await call(client, "/delay/5")
    assert (status, body) == (504, {"detail": "Request timed out"})
    assert trio.current_time() == 2


@pytest.mark.parametrize("seconds", ["-1", "60.5", "abc", "nan", "inf"])
async def test_bad_delay_is_422(
    autojump_clock: trio.testing.MockClock, seconds: str
) -> None:
    async with client_for() as client:
        status, body, _ = await call(client, f"/delay/{seconds}")
    assert status == 422
    assert locations(body) == [["path", "seconds"]]


async def test_delay_checks_the_body_before_waiting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with client_for() as client:
        status, _, _ = await call(
            client,
            "/delay/10",
            "POST",
            data=b"{",
            headers={"Content-Type": "application/json"},
        )
    assert status == 422
    assert trio.current_time() == 0


# /bytes/{n}


async def test_bytes_seeded_are_reproducible(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with client_for() as client:
        first = await client.get("/bytes/64?seed=3")
        again = await client.get("/bytes/64?seed=3")
        unseeded = await client.get("/bytes/64")
    data = await first.get_data()
    assert data == await again.get_data() == random.Random(3).randbytes(64)
    assert first.headers["Content-Type"] == "application/octet-stream"
    assert first.headers["Content-Length"] == "64"
    assert len(await unseeded.get_data()) == 64


async def test_bytes_zero_and_head(autojump_clock: trio.testing.MockClock) -> None:
    """n = 0 is an empty body; HEAD sends the headers only."""
    async with client_for() as client:
        empty = await client.get("/bytes/0")
        head = await client.head("/bytes/1048576")
    assert (empty.status_code, await empty.get_data()) == (200, b"")
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "1048576"
    assert head.headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("path", "loc"),
    [
        ("/bytes/-1", ["path", "n"]),
        ("/bytes/1048577", ["path", "n"]),
        ("/bytes/1k", ["path", "n"]),
        ("/bytes/8?seed=-1", ["query", "seed"]),
        ("/stream/0", ["path", "n"]),
        ("/stream/1001", ["path", "n"]),
        ("/stream/x", ["path", "n"]),
    ],
)
async def test_bad_sizes_are_422(
    autojump_clock: trio.testing.MockClock, path: str, loc: list[str]
) -> None:
    async with client_for() as client:
        status, body, _ = await call(client, path)
    assert status == 422
    assert locations(body) == [loc]


async def test_short_stream(autojump_clock: trio.testing.MockClock) -> None:
    async with client_for() as client:
        response = await client.get("/stream/3?q=1")
        data = await response.get_data()
    assert response.headers["Content-Type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in data.decode().splitlines()]
    assert [line["id"] for line in lines] == [0, 1, 2]
    assert lines[0]["args"] == {"q": "1"}
    assert lines[0]["path"] == "/stream/3"
    assert data.endswith(b"\n")


# /drip


async def test_drip_spreads_the_bytes_over_duration(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Headers after delay; the last of numbytes at delay + duration, exactly."""
    async with client_for() as client:
        response = await client.get("/drip?duration=2&numbytes=4&delay=1&code=503")
        data = await response.get_data()
    assert trio.current_time() == 3
    assert (response.status_code, data) == (503, b"****")
    assert response.headers["Content-Length"] == "4"
    assert response.headers["Content-Type"] == "application/octet-stream"


async def test_drip_defaults(autojump_clock: trio.testing.MockClock) -> None:
    """duration=2, code=200, delay=0 (numbytes=10 is tested over HTTP: more than 10
    chunks deadlock the test client)."""
    async with client_for() as client:
        response = await client.get("/drip?numbytes=3")
        data = await response.get_data()
    assert trio.current_time() == 2
    assert (response.status_code, data) == (200, b"***")


@pytest.mark.parametrize("code", [204, 304])
async def test_drip_without_content(
    autojump_clock: trio.testing.MockClock, code: int
) -> None:
    async with client_for() as client:
        response = await client.get(f"/drip?code={code}&delay=1")
    assert (response.status_code, await response.get_data()) == (code, b"")
    assert trio.current_time() == 1


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("duration=-1", "duration"),
        ("duration=61", "duration"),
        ("duration=nan", "duration"),
        ("numbytes=0", "numbytes"),
        ("numbytes=1048577", "numbytes"),
        ("code=199", "code"),
        ("code=600", "code"),
        ("delay=-0.5", "delay"),
        ("delay=inf", "delay"),
        ("size=3", "size"),
    ],
)
async def test_bad_drip_is_422(
    autojump_clock: trio.testing.MockClock, query: str, name: str
) -> None:
    async with client_for() as client:
        status, body, _ = await call(client, f"/drip?{query}")
    assert status == 422
    assert locations(body) == [["query", name]]


@pytest.mark.parametrize(
    ("numbytes", "duration", "slices"),
    [
        (10, 2, [1] * 10),
        (5, 0, [5]),
        (7, 0.003, [3, 2, 2]),
        (10, 0.005, [2] * 5),
        (1, 60, [1]),
    ],
)
def test_drip_slices(numbytes: int, duration: float, slices: list[int]) -> None:
    """Equal slices, at most one per millisecond, at least one."""
    assert drip_slices(numbytes, duration) == slices


def test_drip_slices_of_a_large_drip() -> None:
    slices = drip_slices(1_048_576, 60)
    assert len(slices) == 60_000
    assert sum(slices) == 1_048_576
    assert max(slices) - min(slices) <= 1


# The OpenAPI document


async def test_chosen_statuses_are_documented(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """/status and /drip document status ranges; binary bodies their media type."""
    async with client_for() as client:
        _, document, _ = await call(client, "/openapi.json")
    paths = document["paths"]
    status = paths["/status/{codes}"]
    assert set(status) == {"get", "post", "put", "patch", "delete"}
    responses = status["get"]["responses"]
    assert {"2XX", "3XX", "4XX", "5XX", "204", "304", "422"} <= set(responses)
    assert "Location" in responses["3XX"]["headers"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    drip = paths["/drip"]["get"]["responses"]
    assert set(drip["5XX"]["content"]) == {"application/octet-stream"}
    assert set(drip["422"]["content"]) == {
        "application/json",
        "application/octet-stream",
    }
    assert (
        "application/octet-stream"
        in (paths["/bytes/{n}"]["get"]["responses"]["200"]["content"])
    )
    assert (
        "application/x-ndjson"
        in (paths["/stream/{n}"]["get"]["responses"]["200"]["content"])
    )
    codes = next(p for p in status["get"]["parameters"] if p["name"] == "codes")
    assert codes["required"] is True
    assert codes["schema"]["type"] == "string"
    for path in ("/anything", "/anything/{rest}", "/headers", "/delay/{seconds}"):
        assert path in paths
    assert "/redirect/{n}" in paths
