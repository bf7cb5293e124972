"""PooledTransport over TLS (the SSL context httpx builds), what falls back to
httpx's transport (HTTP/2, a Unix socket) against real Hypercorn servers, one
transport across two ``trio.run`` calls, and the keep-alive expiry."""

from __future__ import annotations

import http.server
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from hypercorn.config import Config
from hypercorn.trio import serve

from trio_resilience.client import (
    ClientConfig,
    LimitsConfig,
    PooledTransport,
    ResilientClient,
    RetryConfig,
)
from trio_resilience.testing import serve_in_background

from .test_pool_http import assert_clean, raw_server, wait_for


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: ``hello`` and the HTTP version it was asked over."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    body = f"hello over HTTP/{scope['http_version']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def hypercorn(bind: str, **settings: Any) -> AsyncIterator[str]:
    """`hello` on Hypercorn in this task's nursery; yields the bound address."""
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = None
    for name, value in settings.items():
        setattr(config, name, value)
    async with trio.open_nursery() as nursery:
        binds: list[str] = await nursery.start(serve, hello, config)
        yield binds[0]
        nursery.cancel_scope.cancel()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> dict[str, str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    return {"certfile": str(certfile), "keyfile": str(keyfile)}


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_https_with_a_trusted_ca_reuses_its_connection(
    ca: trustme.CA, tls_files: dict[str, str]
) -> None:
    """TLS to Hypercorn with the test CA trusted: both requests succeed over
    HTTP/1.1 on one connection."""
    with trio.fail_after(10):
        async with hypercorn("127.0.0.1:0", **tls_files) as url:
            assert url.startswith("https://")
            transport = PooledTransport(verify=trusting(ca))
            async with httpx.AsyncClient(transport=transport) as client:
                for _ in range(2):
                    answer = await client.get(url)
                    assert answer.text == "hello over HTTP/1.1"
                assert (transport.stats().created, transport.stats().reused) == (1, 1)
                assert_clean(transport)


async def test_an_untrusted_certificate_is_a_connect_error(
    tls_files: dict[str, str],
) -> None:
    """The same server with the default trust store: `httpx.ConnectError` naming
    the failed verification, no slot kept; ``verify=False`` gets through."""
    with trio.fail_after(10):
        async with hypercorn("127.0.0.1:0", **tls_files) as url:
            transport = PooledTransport()
            async with httpx.AsyncClient(transport=transport) as client:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY"):
                    await client.get(url)
                assert transport.stats().open == 0
            config = ClientConfig(verify_ssl=False)
            async with ResilientClient(config) as resilient:
                assert resilient.transport == "pooled"
                assert (await resilient.get(url)).text == "hello over HTTP/1.1"


async def test_http2_falls_back_to_httpx_and_speaks_it(
    tls_files: dict[str, str],
) -> None:
    """ClientConfig(http2=True): httpx's transport, and the server sees HTTP/2."""
    with trio.fail_after(10):
        async with hypercorn("127.0.0.1:0", **tls_files) as url:
            config = ClientConfig(http2=True, verify_ssl=False)
            async with ResilientClient(config) as client:
                assert client.transport == "httpx"
                answer = await client.get(url)
                assert answer.http_version == "HTTP/2"
                assert answer.text == "hello over HTTP/2"


async def test_a_unix_socket_falls_back_to_httpx(tmp_path: Path) -> None:
    """ClientConfig(uds=path): httpx's transport over the socket."""
    path = tmp_path / "hello.sock"
    with trio.fail_after(10):
        async with hypercorn(f"unix:{path}"):
            config = ClientConfig(uds=str(path), base_url="http://localhost")
            async with ResilientClient(config) as client:
                assert client.transport == "httpx"
                assert (await client.get("/")).text == "hello over HTTP/1.1"


class _KeepAliveHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def threaded_server() -> Iterator[str]:
    """The standard library's HTTP/1.1 server, in a thread: it outlives trio.run."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _KeepAliveHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


TRANSPORT = PooledTransport()
"""One module-level transport, as an application would hold it."""


def test_one_transport_across_two_trio_runs() -> None:
    """A connection left idle by one ``trio.run`` serves the next one's request
    (the pool keeps no run-bound state); closed in a third run."""

    async def get(url: str) -> int:
        async with httpx.AsyncClient(transport=TRANSPORT) as client:
            return (await client.get(url)).status_code

    async def fetch(url: str) -> int:
        client = httpx.AsyncClient(transport=TRANSPORT)
        return (await client.get(url)).status_code  # not closed: keeps TRANSPORT

    with threaded_server() as url:
        assert trio.run(fetch, url) == 200
        assert trio.run(fetch, url) == 200
        stats = TRANSPORT.stats()
        assert (stats.created, stats.reused, stats.idle) == (1, 1, 1)
        assert trio.run(get, url) == 200  # closes the transport on the way out
    assert TRANSPORT.is_closed
    assert TRANSPORT.stats().open == 0


async def test_a_connection_idle_past_the_expiry_is_not_reused() -> None:
    """keepalive_expiry=0.3: once that long has passed on the monotonic clock,
    the idle connection is closed instead of reused (the server sees the close)."""
    with trio.fail_after(10):
        async with raw_server() as server:
            limits = LimitsConfig(keepalive_expiry=0.3).httpx_limits()
            transport = PooledTransport(limits=limits)
            async with httpx.AsyncClient(transport=transport) as client:
                await client.get(server.url + "/ok")
                await client.get(server.url + "/ok")  # at once: reused
                assert transport.stats().reused == 1
                idle_from = time.monotonic()
                await wait_for(lambda: time.monotonic() - idle_from > 0.35)
                await client.get(server.url + "/ok")
                stats = transport.stats()
                assert (stats.created, stats.reused) == (2, 1)
                await wait_for(lambda: server.closed == 1)
                assert_clean(transport)


CLIENT = ResilientClient(ClientConfig(retry=RetryConfig(max_attempts=1)))
"""One module-level client, shared by the tests below (each its own trio.run)."""


@pytest.fixture(scope="module")
def module_client() -> Iterator[ResilientClient]:
    """`CLIENT`, closed in a ``trio.run`` of its own once the module is done."""
    yield CLIENT
    trio.run(CLIENT.close)
    pool = CLIENT.http_transport
    assert isinstance(pool, PooledTransport)
    assert (pool.is_closed, pool.stats().open) == (True, 0)


@pytest.mark.parametrize("round_", [1, 2])
async def test_a_module_level_client_serves_test_after_test(
    module_client: ResilientClient, round_: int
) -> None:
    """Each test its own server: the client's pool, left with an idle connection
    to the last test's server (gone now), serves this one's."""
    async with serve_in_background() as url:
        for _ in range(3):
            assert (await module_client.get(f"{url}/msg")).status_code == 200
    pool = module_client.http_transport
    assert isinstance(pool, PooledTransport)
    assert (pool.stats().in_use, pool.stats().waiting) == (0, 0)
    assert pool.stats().created == round_
