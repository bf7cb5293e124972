"""The guards' policy from settings, header by header, and the app's answers.

The real server's answers (raw sockets, connection ends, logs) are pinned in
tests/integration/test_guards_http.py; these pin the parsing and the decisions.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from pydantic import ValidationError
from structlog.testing import capture_logs

from trio_resilience.server import ServerSettings, create_app
from trio_resilience.server._guards import (
    AMBIGUOUS_FRAMING,
    DRAIN_SECONDS,
    HOST_NOT_ALLOWED,
    NOT_JSON,
    TOKEN_INVALID,
    TOKEN_MISSING,
    GuardPolicy,
    host_name,
    is_json_media_type,
    is_loopback_address,
)

TOKEN = "s3cret-token"


def scope(
    method: str = "GET", *headers: tuple[bytes, bytes], http_version: str = "1.1"
) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": http_version,
        "method": method,
        "path": "/x",
        "headers": list(headers),
    }


def policy(**settings: Any) -> GuardPolicy:
    return GuardPolicy.from_settings(ServerSettings(**settings))


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (b"localhost", "localhost"),
        (b"LocalHost:8000", "localhost"),
        (b"localhost.:80", "localhost"),
        (b"127.0.0.1:1", "127.0.0.1"),
        (b"[::1]", "[::1]"),
        (b"[0:0::1]:8000", "[::1]"),
        (b"evil.example", "evil.example"),
        (b"localhost:", "localhost"),
        (b"localhost:80x", None),
        (b"::1", None),
        (b"[::1", None),
        (b"[::1]x", None),
        (b"[nope]", None),
        (b"", None),
        (b":80", None),
        (b"caf\xc3\xa9.test", None),
    ],
)
def test_host_name_parsing(value: bytes, name: str | None) -> None:
    """A Host header's name is lower case, portless, IPv6 canonical; None if bad."""
    assert host_name(value) == name


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("example.com", False),
    ],
)
def test_loopback_bind_addresses(host: str, loopback: bool) -> None:
    """127.0.0.0/8, ::1 and localhost are loopback bind addresses; nothing else."""
    assert is_loopback_address(host) is loopback


@pytest.mark.parametrize(
    ("value", "json"),
    [
        (b"application/json", True),
        (b"Application/JSON", True),
        (b"application/json; charset=utf-8", True),
        (b'application/json;charset="UTF-8"', True),
        (b"application/merge-patch+json", True),
        (b"application/problem+json; charset=utf8", True),
        (b"application/json; charset=latin-1", False),
        (b"application/+json", False),
        (b"text/plain", False),
        (b"text/json", False),
        (b"application/x-www-form-urlencoded", False),
        (b"multipart/form-data; boundary=x", False),
        (b"application/jsonx", False),
        (b"", False),
    ],
)
def test_json_media_types(value: bytes, json: bool) -> None:
    """application/json and application/*+json, in UTF-8 if a charset is given."""
    assert is_json_media_type(value) is json


def test_loopback_bind_allows_only_loopback_hosts_by_default() -> None:
    """Bound to 127.0.0.1, a foreign Host is refused and loopback names pass."""
    guard = policy()
    assert guard.refusal(scope("GET", (b"host", b"evil.example"))) is HOST_NOT_ALLOWED
    for host in (b"localhost:8000", b"127.0.0.2", b"[::1]:80", b"LOCALHOST"):
        assert guard.refusal(scope("GET", (b"host", host))) is None


def test_public_bind_allows_any_host_by_default() -> None:
    """Bound to 0.0.0.0 or a public address, any Host passes unless listed."""
    for host in ("0.0.0.0", "::", "192.0.2.1", "example.com"):
        assert policy(host=host).allowed_hosts is None
    listed = policy(host="0.0.0.0", allowed_hosts=("api.test",))
    assert listed.refusal(scope("GET", (b"host", b"api.test:80"))) is None
    assert listed.refusal(scope("GET", (b"host", b"localhost"))) is None
    assert listed.refusal(scope("GET", (b"host", b"other.test"))) is HOST_NOT_ALLOWED


def test_allowed_hosts_add_names_and_star_allows_any() -> None:
    """allowed_hosts adds names (IPv6 in either spelling); * allows every Host."""
    guard = policy(allowed_hosts=("Box.Test", "::2"))
    assert guard.refusal(scope("GET", (b"host", b"box.test:8000"))) is None
    assert guard.refusal(scope("GET", (b"host", b"[0::2]"))) is None
    assert guard.refusal(scope("GET", (b"host", b"evil.test"))) is HOST_NOT_ALLOWED
    assert policy(allowed_hosts=("*",)).allowed_hosts is None


def test_a_request_without_host_passes_and_two_hosts_do_not() -> None:
    """No Host (HTTP/1.0) is not refused; two Host headers always are."""
    assert policy().refusal(scope("GET")) is None
    two = scope("GET", (b"host", b"localhost"), (b"host", b"localhost"))
    assert policy(host="0.0.0.0").refusal(two) is HOST_NOT_ALLOWED


def test_content_length_with_transfer_encoding_is_refused_and_closes() -> None:
    """Both framings in one request: 400 with Connection: close, on any route."""
    both = scope("GET", (b"content-length", b"4"), (b"transfer-encoding", b"chunked"))
    assert policy(host="0.0.0.0").refusal(both) is AMBIGUOUS_FRAMING
    assert AMBIGUOUS_FRAMING.status == 400
    assert (b"connection", b"close") in AMBIGUOUS_FRAMING.headers


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_bodies_must_be_json(method: str) -> None:
    """A POST, PUT or PATCH body that is not declared JSON is a 415."""
    guard = policy()
    plain = scope(method, (b"content-length", b"2"), (b"content-type", b"text/plain"))
    untyped = scope(method, (b"transfer-encoding", b"chunked"))
    typed = scope(
        method, (b"content-length", b"2"), (b"content-type", b"application/json")
    )
    assert guard.refusal(plain) is NOT_JSON
    assert guard.refusal(untyped) is NOT_JSON
    assert guard.refusal(typed) is None
    assert NOT_JSON.status == 415


def test_requests_without_a_body_need_no_content_type() -> None:
    """No body (no Content-Length, or 0), or a GET/DELETE: no content type needed."""
    guard = policy()
    plain = (b"content-type", b"text/plain")
    assert guard.refusal(scope("POST")) is None
    assert guard.refusal(scope("POST", plain)) is None
    assert guard.refusal(scope("POST", (b"content-length", b"0"), plain)) is None
    assert guard.refusal(scope("DELETE", (b"content-length", b"2"))) is None


def test_over_http2_a_content_type_alone_announces_a_body() -> None:
    """HTTP/2 bodies need no Content-Length: a non-JSON Content-Type is a 415."""
    guard = policy()
    plain = (b"content-type", b"text/plain")
    assert guard.refusal(scope("POST", plain, http_version="2")) is NOT_JSON
    assert guard.refusal(scope("POST", http_version="2")) is None


def test_control_token_guards_every_unsafe_method() -> None:
    """With a token, methods other than GET/HEAD/OPTIONS need Bearer <token>."""
    guard = policy(control_token=TOKEN)
    for method in ("GET", "HEAD", "OPTIONS"):
        assert guard.refusal(scope(method)) is None
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert guard.refusal(scope(method)) is TOKEN_MISSING
        wrong = scope(method, (b"authorization", b"Bearer nope"))
        assert guard.refusal(wrong) is TOKEN_INVALID
        basic = scope(method, (b"authorization", b"Basic " + TOKEN.encode()))
        assert guard.refusal(basic) is TOKEN_INVALID
        right = scope(method, (b"authorization", b"bearer  " + TOKEN.encode()))
        assert guard.refusal(right) is None
    assert TOKEN_MISSING.status == TOKEN_INVALID.status == 401
    assert dict(TOKEN_MISSING.headers)[b"www-authenticate"].startswith(b"Bearer")


def test_the_token_is_checked_before_the_body_type() -> None:
    """Without the token a client learns nothing else about its request."""
    guard = policy(control_token=TOKEN)
    plain = scope("POST", (b"content-length", b"2"), (b"content-type", b"text/plain"))
    assert guard.refusal(plain) is TOKEN_MISSING


def test_no_token_means_no_authorization_needed() -> None:
    """By default control routes are open: no token, no Authorization check."""
    assert policy().refusal(scope("DELETE")) is None


def test_the_token_stays_out_of_reprs_and_dumps() -> None:
    """Neither the settings nor the policy show the token in a repr or a dump."""
    settings = ServerSettings(control_token=TOKEN)
    guard = GuardPolicy.from_settings(settings)
    assert TOKEN not in repr(settings)
    assert TOKEN not in repr(guard)
    assert TOKEN not in str(settings.model_dump(mode="json"))
    assert settings.model_dump(mode="json")["control_token"] == "**********"
    assert guard.control_token == TOKEN.encode()


def test_guard_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """SERVER_ALLOWED_HOSTS is comma-separated and lower-cased; the token is read."""
    monkeypatch.setenv("SERVER_ALLOWED_HOSTS", " Box.test, ::1 ,,")
    monkeypatch.setenv("SERVER_CONTROL_TOKEN", TOKEN)
    settings = ServerSettings.from_env(env_file=None)
    assert settings.allowed_hosts == ("box.test", "::1")
    assert settings.control_token is not None
    assert settings.control_token.get_secret_value() == TOKEN


@pytest.mark.parametrize("entry", ["http://box.test", "box.test:8000", "[::1", "a b"])
def test_allowed_hosts_are_bare_names(entry: str) -> None:
    """An allowed_hosts entry with a scheme or a port is rejected, naming it."""
    with pytest.raises(ValidationError) as caught:
        ServerSettings(allowed_hosts=(entry,))
    (error,) = caught.value.errors()
    assert (
        error["msg"] == f"Value error, not a host name (no scheme or port): {entry!r}"
    )


def test_an_empty_control_token_is_rejected() -> None:
    """A control token must not be empty."""
    with pytest.raises(ValidationError, match=r"control_token\n"):
        ServerSettings(control_token="")


async def test_refusals_are_json_and_logged_as_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each refusal answers {"detail": ...} and logs one line, outcome refused."""
    app = create_app(ServerSettings(control_token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with app.test_app():
        client = app.test_client()
        with capture_logs() as logs:
            host = await client.get("/health", headers={"Host": "evil.example"})
            token = await client.post("/fail/reset")
            plain = await client.post(
                "/api/v1/jobs",
                data=b'{"type": "echo"}',
                headers={**auth, "Content-Type": "text/plain", "Content-Length": "16"},
            )
            ok = await client.post("/fail/reset", headers=auth)
    assert (host.status_code, await host.get_json()) == (
        400,
        {"detail": "Host not allowed"},
    )
    assert token.status_code == 401
    assert token.headers["WWW-Authenticate"].startswith("Bearer")
    assert plain.status_code == 415
    assert (await plain.get_json())["detail"] == "Content-Type must be application/json"
    assert ok.status_code == 200
    lines = [(e["status"], e["outcome"]) for e in logs if e["event"] == "request"]
    assert lines == [(400, "refused"), (401, "refused"), (415, "refused"), (200, "ok")]
    assert TOKEN not in repr(logs)


async def test_a_refused_request_never_waits_for_a_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With the only slot taken, a refused request is answered at once."""
    app = create_app(ServerSettings(max_concurrency=1))
    async with app.test_app():
        client = app.test_client()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client.get, "/msg?delay=5000")
            await trio.testing.wait_all_tasks_blocked()
            refused = await client.post(
                "/api/v1/items",
                data=b"{}",
                headers={"Content-Type": "text/plain", "Content-Length": "2"},
            )
            assert trio.current_time() == 0.0
    assert refused.status_code == 415
    assert trio.current_time() == 5.0


async def test_a_refused_body_that_never_comes_is_answered_after_the_drain_bound(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A refused request's body is awaited DRAIN_SECONDS at most; then the refusal
    goes out with Connection: close."""
    app = create_app()
    request = scope(
        "POST",
        (b"host", b"localhost"),
        (b"content-type", b"text/plain"),
        (b"content-length", b"10"),
    )
    sent: list[dict[str, Any]] = []

    async def body_never_comes() -> dict[str, Any]:
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async with app.test_app():
        await app({**request, "path": "/api/v1/jobs"}, body_never_comes, send)  # type: ignore[arg-type]
        assert trio.current_time() == DRAIN_SECONDS
    assert sent[0]["status"] == 415
    assert (b"connection", b"close") in sent[0]["headers"]
