"""The documentation pages work offline: every file they load comes from the server.

A page is fetched from a real server, each ``<script src>`` and ``<link href>`` it
names is resolved against the page's URL, and must be on the server's own origin
and served by it as a script or a stylesheet of real size.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from trio_resilience.server import ServerSettings
from trio_resilience.testing import serve_in_background

PAGES = ("/docs", "/redocs", "/redoc")
MIN_ASSET_BYTES = 100_000  # the real bundles are 0.17 to 1.5 MB
CONTENT_TYPES = {"script": "text/javascript", "link": "text/css"}
GLOBALS = {"/docs": b"SwaggerUIBundle", "/redocs": b"Redoc", "/redoc": b"Redoc"}
"""The name each page's own script or element relies on, which its asset defines."""


class _Assets(HTMLParser):
    """Collects the URLs of the scripts and stylesheets a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and named.get("src"):
            self.found.append(("script", str(named["src"])))
        elif tag == "link" and named.get("href"):
            self.found.append(("link", str(named["href"])))


def assets_of(html: str) -> list[tuple[str, str]]:
    parser = _Assets()
    parser.feed(html)
    return parser.found


def origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


@pytest.mark.parametrize("page", PAGES)
async def test_page_loads_only_assets_the_server_serves(page: str) -> None:
    """Each script and stylesheet a docs page names is on the server's own origin,
    and the server answers it with its content type and a real body."""
    async with (
        serve_in_background(ServerSettings(log_level="ERROR")) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        response = await client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        page_url = str(response.url)
        found = assets_of(response.text)
        kinds = {kind for kind, _ in found}
        assert "script" in kinds
        if page == "/docs":
            assert "link" in kinds
        bodies = b""
        for kind, reference in found:
            url = urljoin(page_url, reference)
            assert origin(url) == origin(base_url), f"{page} loads {reference}"
            asset = await client.get(url)
            assert asset.status_code == 200, url
            media_type = asset.headers["content-type"].split(";")[0].strip()
            assert media_type == CONTENT_TYPES[kind], url
            assert len(asset.content) >= MIN_ASSET_BYTES, url
            bodies += asset.content
        assert GLOBALS[page] in bodies


async def test_assets_are_revalidated_by_etag() -> None:
    """An asset answers 304 to its own ETag, and an unknown asset is a JSON 404."""
    async with (
        serve_in_background(ServerSettings(log_level="ERROR")) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        first = await client.get("/docs/assets/swagger-ui.css")
        etag = first.headers["etag"]
        again = await client.get(
            "/docs/assets/swagger-ui.css", headers={"If-None-Match": etag}
        )
        unknown = await client.get("/docs/assets/nothing.js")
    assert again.status_code == 304
    assert again.content == b""
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "Not Found"})


async def test_no_docs_when_disabled() -> None:
    """With enable_docs off, neither the pages nor their assets are served."""
    settings = ServerSettings(log_level="ERROR", enable_docs=False)
    async with (
        serve_in_background(settings) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        paths = (*PAGES, "/openapi.json", "/docs/assets/redoc.standalone.js")
        statuses = {path: (await client.get(path)).status_code for path in paths}
    assert statuses == dict.fromkeys(paths, 404)
