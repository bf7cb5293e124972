"""Requests refused before they reach a route: framing, Host, control token, body type.

The test server usually runs on a developer's machine, where any web page the user
visits can send it requests. `GuardMiddleware` refuses, deciding from the request
headers alone (one pass over them, so ``/health`` stays cheap):

1. a request with both ``Content-Length`` and ``Transfer-Encoding``: 400 and the
   connection closes (RFC 9112 section 6.3; the two framings disagree, which is how
   requests are smuggled past a proxy; hypercorn issue 279);
2. a ``Host`` that is not allowed (DNS rebinding), or several ``Host`` headers:
   400. Bound to a loopback address, only loopback names are allowed
   (``localhost``, ``127.x.x.x``, ``[::1]``, any port), plus ``allowed_hosts``;
   bound elsewhere, any host unless ``allowed_hosts`` names some. A request without
   ``Host`` (only HTTP/1.0 may omit it, and browsers never do) is not refused;
3. with a ``control_token``, a request whose method is not GET, HEAD or OPTIONS, or
   that reads ``/metrics``, and that lacks ``Authorization: Bearer <token>``: 401
   with ``WWW-Authenticate`` (`needs_control_token`);
4. a POST, PUT or PATCH that carries a body not declared JSON (``application/json``
   or ``application/*+json``, any charset parameter being UTF-8): 415. Every request
   body this server reads is JSON; a page can send ``text/plain`` cross-origin
   without a CORS preflight, never ``application/json``. Over HTTP/1 a body is
   announced by ``Content-Length`` (not 0) or ``Transfer-Encoding``; over HTTP/2
   and 3, which need neither, also by a ``Content-Type`` alone.

Each refusal is JSON ``{"detail": ...}``; its exchange's outcome is ``"refused"``.
"""

from __future__ import annotations

import hmac
import ipaddress
import json

import attrs
import trio

from ._asgi import EXCHANGE_KEY, ASGIApp, Receive, Scope, Send, send_json_payload
from ._connections import CLOSE, Exchange, announces_body
from ._settings import ServerSettings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods that need no control token (OPTIONS: CORS preflights), but to read
`TOKEN_READ_PATHS`."""
TOKEN_READ_PATHS = frozenset({"/metrics"})
"""Paths that need the control token to be read too (GET, HEAD)."""
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose request body, if any, must be JSON."""
LOOPBACK_NAMES = frozenset({"localhost", "[::1]"})
"""Loopback Host names besides 127.0.0.0/8."""


@attrs.frozen
class Refusal:
    """A complete response refusing a request: status, JSON body, extra headers."""

    status: int
    detail: str
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = attrs.field(init=False)

    @body.default
    def _body(self) -> bytes:
        return json.dumps({"detail": self.detail}, separators=(",", ":")).encode()

    async def send(self, send: Send) -> None:
        await send_json_payload(send, self.status, self.body, self.headers)


AMBIGUOUS_FRAMING = Refusal(
    400, "Content-Length and Transfer-Encoding must not both be sent", (CLOSE,)
)
HOST_NOT_ALLOWED = Refusal(400, "Host not allowed")
TOKEN_MISSING = Refusal(
    401,
    "This route needs Authorization: Bearer <control token>",
    ((b"www-authenticate", b'Bearer realm="trio_resilience"'),),
)
TOKEN_INVALID = Refusal(
    401,
    "Invalid control token",
    ((b"www-authenticate", b'Bearer realm="trio_resilience", error="invalid_token"'),),
)
NOT_JSON = Refusal(415, "Content-Type must be application/json")


def is_loopback_address(host: str) -> bool:
    """Whether a bind address is a loopback one: 127.0.0.0/8, ::1 or localhost."""
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(value: bytes) -> str | None:
    """A ``Host`` header's name, lower case, without its port (an IPv6 address keeps
    its brackets); None if the value is malformed."""
    try:
        text = value.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        return None
    if text.startswith("["):
        address, bracket, port = text[1:].partition("]")
        if not bracket or (port and not port.startswith(":")):
            return None
        try:
            name = f"[{ipaddress.IPv6Address(address).compressed}]"
        except ValueError:
            return None
        port = port[1:]
    else:
        name, _, port = text.partition(":")
        name = name.removesuffix(".")  # the root domain's dot: the same name
    if not name or (port and not port.isdigit()):
        return None
    return name


def is_loopback_name(name: str) -> bool:
    """Whether a `host_name` always means this machine: localhost, 127.x.x.x, [::1]."""
    if name in LOOPBACK_NAMES:
        return True
    if not name.startswith("127."):
        return False
    try:
        return ipaddress.IPv4Address(name).is_loopback
    except ValueError:
        return False


def is_json_media_type(value: bytes) -> bool:
    """``application/json`` or ``application/<x>+json``, any parameters, provided a
    ``charset`` parameter (if any) says UTF-8."""
    media, _, parameters = value.partition(b";")
    kind, _, subtype = media.strip().lower().partition(b"/")
    if kind != b"application" or not (
        subtype == b"json" or (subtype.endswith(b"+json") and len(subtype) > 5)
    ):
        return False
    for parameter in parameters.split(b";"):
        key, _, given = parameter.partition(b"=")
        if key.strip().lower() == b"charset":
            charset = given.strip().strip(b'"').lower()
            if charset not in (b"utf-8", b"utf8"):
                return False
    return True


def needs_control_token(method: str, path: str) -> bool:
    """Whether a request needs the control token (when the server has one): every
    method but GET, HEAD and OPTIONS, and reads of `TOKEN_READ_PATHS` (OPTIONS
    stays open: CORS preflights carry no credentials)."""
    return method not in SAFE_METHODS or (
        method != "OPTIONS" and path in TOKEN_READ_PATHS
    )


def _normalised(entry: str) -> str:
    """An ``allowed_hosts`` entry spelled as `host_name` spells a Host header."""
    if entry.startswith("[") and entry.endswith("]"):
        entry = entry[1:-1]
    try:
        address = ipaddress.ip_address(entry)
    except ValueError:
        return entry.removesuffix(".")
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


@attrs.frozen(kw_only=True)
class GuardPolicy:
    """What `GuardMiddleware` refuses, derived from the settings by `from_settings`.

    ``allowed_hosts`` is None when any Host is accepted; otherwise the names
    accepted besides the loopback ones. ``control_token`` is the token's bytes, or
    None when control routes are open (it is left out of the repr).
    """

    allowed_hosts: frozenset[str] | None = None
    control_token: bytes | None = attrs.field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> GuardPolicy:
        names = frozenset(_normalised(name) for name in settings.allowed_hosts)
        allowed: frozenset[str] | None = names
        if "*" in names or (not names and not is_loopback_address(settings.host)):
            allowed = None
        token = settings.control_token
        return cls(
            allowed_hosts=allowed,
            control_token=None if token is None else token.get_secret_value().encode(),
        )

    def refusal(self, scope: Scope) -> Refusal | None:
        """The answer refusing this HTTP request, or None to let it through."""
        host: bytes | None = None
        hosts = 0  # RFC 9112 section 3.2: more than one is a 400
        sized = False
        chunked = False
        content_type: bytes | None = None
        authorization: bytes | None = None
        for key, value in scope["headers"]:
            name = key.lower()
            if name == b"host":
                host = value
                hosts += 1
            elif name == b"content-length":
                sized = True
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                content_type = value if content_type is None else content_type
            elif name == b"authorization":
                authorization = value if authorization is None else authorization
        if chunked and sized:
            return AMBIGUOUS_FRAMING
        if hosts > 1 or (host is not None and not self._host_allowed(host)):
            return HOST_NOT_ALLOWED  # several: which one would the route see?
        method: str = scope["method"]
        if self.control_token is not None and needs_control_token(
            method, scope["path"]
        ):
            if authorization is None:
                return TOKEN_MISSING
            if not self._token_matches(authorization):
                return TOKEN_INVALID
        if (
            method in BODY_METHODS
            and (content_type is None or not is_json_media_type(content_type))
            and announces_body(scope)
        ):
            return NOT_JSON
        return None

    def _host_allowed(self, host: bytes) -> bool:
        if self.allowed_hosts is None:
            return True
        name = host_name(host)
        if name is None:
            return False
        return is_loopback_name(name) or name in self.allowed_hosts

    def _token_matches(self, authorization: bytes) -> bool:
        assert self.control_token is not None
        scheme, _, credentials = authorization.strip().partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        return hmac.compare_digest(credentials.strip(), self.control_token)


DRAIN_BYTES = 65_536
DRAIN_SECONDS = 1.0
"""A refused request's body is read and dropped up to these bounds (see
`GuardMiddleware`); past them the refusal is sent at once and closes the
connection."""


class GuardMiddleware:
    """Answers the requests `GuardPolicy` refuses; lets every other one through.

    It sits inside the request log (refusals are logged, outcome ``"refused"``) and
    outside the timeout and concurrency layers, so a refused request never waits
    for, or takes, a concurrency slot.

    Before answering, what is left of a refused request's body is read and dropped,
    within `DRAIN_BYTES` and `DRAIN_SECONDS`: a connection whose body was read in
    full can be kept alive (except after ambiguous framing, which always closes).
    It also keeps Hypercorn from losing the answer: when bytes follow a complete
    request (a smuggled one, say) and the response says ``Connection: close``,
    Hypercorn's reading task closes the socket as soon as it parses them, even
    while the response is being written (``TCPServer._close`` sends EOF without
    the send lock: ``BusyResourceError``, the client sees EOF and no response).
    Once the body is read and the reading task has run once more, it waits for
    the response to end, and parses nothing until then.
    """

    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.policy.refusal(scope)
        if refusal is None:
            return await self.app(scope, receive, send)
        exchange: Exchange = scope[EXCHANGE_KEY]
        exchange.outcome = "refused"
        if exchange.body_pending:
            await drop_body(receive, exchange)
        if not exchange.client_gone:
            await refusal.send(send)
        return None


async def drop_body(receive: Receive, exchange: Exchange) -> None:
    """Read and drop what is left of the request body, within `DRAIN_BYTES` and
    `DRAIN_SECONDS` (or until the client leaves)."""
    received = 0
    with trio.move_on_after(DRAIN_SECONDS):
        while exchange.body_pending and not exchange.client_gone:
            message = await receive()
            received += len(message.get("body", b""))
            if received > DRAIN_BYTES:
                return
    # The reading task, woken by (or waking) the last receive, runs before this
    # task goes on: by then it waits for the response to end (see the class).
    await trio.lowlevel.checkpoint()
