"""/health and /fail/* answer JSON the way every other route does, on virtual time.

One encoding for every route: ``application/json``, compact, no trailing newline
(what ``GET /msg`` has always sent; these went through Quart's JSON provider).
"""

from __future__ import annotations

import json

import pytest
import trio.testing

from trio_resilience.server import ServerSettings, create_app

ROUTES = [
    ("GET", "/health"),
    ("GET", "/fail/status"),
    ("POST", "/fail/count/2"),
    ("POST", "/fail/duration/1.5"),
    ("POST", "/fail/reset"),
    ("POST", "/fail/count/x"),
    ("POST", "/fail/duration/-1"),
    ("GET", "/msg?delay=x"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_body_is_compact_json(
    autojump_clock: trio.testing.MockClock, method: str, path: str
) -> None:
    """The body is the compact encoding of its own value, with no trailing newline."""
    app = create_app(ServerSettings(log_level="ERROR"))
    async with app.test_app():
        response = await app.test_client().open(path, method=method)
        body = await response.get_data()
    assert response.headers["Content-Type"] == "application/json"
    value = json.loads(body)
    assert body == json.dumps(value, separators=(",", ":")).encode()
