"""Which transport a ResilientClient sends through, its configuration's checks,
and the memo of merged URLs (the same string always reaches the same URL)."""

from __future__ import annotations

import logging

import httpx
import pytest
import trio
import trio.testing

from trio_resilience.client import (
    ClientConfig,
    LimitsConfig,
    PooledTransport,
    ResilientClient,
    choose_transport,
)
from trio_resilience.client._client import URL_CACHE_SIZE

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.parametrize(
    ("config", "kind", "reason"),
    [
        (ClientConfig(), "pooled", ""),
        (ClientConfig(transport="httpx"), "httpx", "ClientConfig(transport='httpx')"),
        (ClientConfig(http2=True), "httpx", "HTTP/2 (ClientConfig(http2=True))"),
        (
            ClientConfig(proxy="http://proxy.test:3128"),
            "httpx",
            "a proxy (ClientConfig(proxy=...))",
        ),
        (
            ClientConfig(uds="/tmp/service.sock"),
            "httpx",
            "a Unix socket (ClientConfig(uds=...))",
        ),
    ],
)
def test_the_choice_follows_the_config(
    config: ClientConfig, kind: str, reason: str
) -> None:
    """The pool by default; httpx's transport for what the pool does not do."""
    assert choose_transport(config) == (kind, reason)
    client = ResilientClient(config)
    assert client.transport == kind
    assert isinstance(client.http_transport, PooledTransport) == (kind == "pooled")


def test_a_proxy_in_the_environment_falls_back_visibly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """HTTPS_PROXY set: httpx's transport (which honours it), said in one INFO
    record; the pool would ignore the proxy silently."""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    with caplog.at_level(logging.INFO, logger="resilient_client"):
        client = ResilientClient()
    assert client.transport == "httpx"
    assert client.http_transport is None
    assert [r.getMessage() for r in caplog.records] == [
        "ResilientClient uses httpx's transport for a proxy from the environment "
        "(HTTPS_PROXY)"
    ]


def test_a_given_transport_is_custom() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    client = ResilientClient(transport=transport)
    assert (client.transport, client.http_transport) == ("custom", transport)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: ClientConfig(transport="nope"),
            r"^transport must be 'pooled' or 'httpx', not 'nope'$",
        ),
        (lambda: ClientConfig(proxy=""), r"^proxy must be a non-empty str or None"),
        (lambda: LimitsConfig(max_connections=0), r"^max_connections must be >= 1$"),
        (
            lambda: LimitsConfig(max_keepalive_connections=-1),
            r"^max_keepalive_connections must be >= 0$",
        ),
        (
            lambda: LimitsConfig(keepalive_expiry=-1),
            r"^keepalive_expiry must be >= 0",
        ),
    ],
)
def test_bad_transport_settings_are_refused(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_limits_default_to_httpx_s() -> None:
    limits = LimitsConfig().httpx_limits()
    default = httpx.Limits(
        max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
    )
    assert limits == default


async def test_the_same_url_string_always_reaches_the_same_url(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Relative paths against a base URL with a path, absolute URLs, query strings,
    params=: each request goes where httpx alone would send it, the first time
    and every time after, also once more strings than the memo holds were seen."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200)

    base = "http://service.test/api/"
    reference = httpx.AsyncClient(base_url=base)
    cases = ["v1/items", "/v1/items", "v1/items?b&a=1", "http://other.test/x", ""]
    cases += [f"many/{n}" for n in range(URL_CACHE_SIZE + 10)]
    config = ClientConfig(base_url=base)
    async with ResilientClient(
        config, transport=httpx.MockTransport(handler)
    ) as client:
        for _ in range(2):
            for url in cases:
                await client.get(url)
            await client.get("v1/items", params={"page": 2})
    expected = [str(reference.build_request("GET", url).url) for url in cases]
    expected.append(
        str(reference.build_request("GET", "v1/items", params={"page": 2}).url)
    )
    assert seen == expected * 2
    await reference.aclose()
