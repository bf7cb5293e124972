"""The TCP connection under an ASGI exchange, for faults that act on the socket.

ASGI has no message for "drop this connection without a response" (hypercorn issue
313): an app that returns without one is answered 500 by the server. A reset or a
bare close therefore needs the socket itself. Hypercorn's Trio worker passes the
app its `HTTPStream.app_send`; following the ``send`` callables it forwards to
(the HTTP/1 or HTTP/2 protocol's, then the `TCPServer`'s) leads to the
`trio.SocketStream` of the connection. That walk is the one place this package
depends on how Hypercorn is built inside; `connection_stream` returns None when it
finds no stream (another server, or an in-process test client), and callers fall
back to what ASGI can do.

What the client sees:

- `reset`: ``SO_LINGER`` 0, then close: the kernel sends a TCP RST, so the client's
  read fails with "connection reset by peer" (httpx: `httpx.ReadError`; if it was
  still writing, `httpx.WriteError`). Every request on the connection dies with it
  (over HTTP/2, every stream).
- `close`: an orderly close (FIN) with no response: httpx raises
  `httpx.RemoteProtocolError` ("Server disconnected without sending a response").
"""

from __future__ import annotations

import socket
import struct
from contextlib import suppress
from typing import Any

import trio

_MAX_HOPS = 4
_LINGER_ZERO = struct.pack("ii", 1, 0)


def connection_stream(send: Any) -> trio.SocketStream | None:
    """The socket stream of the connection ``send`` answers on, if reachable."""
    owner = getattr(send, "__self__", None)
    for _ in range(_MAX_HOPS):
        if owner is None:
            return None
        stream = getattr(owner, "stream", None)
        if isinstance(stream, trio.SSLStream):
            stream = stream.transport_stream
        if isinstance(stream, trio.SocketStream):
            return stream
        owner = getattr(getattr(owner, "send", None), "__self__", None)
    return None


async def reset(stream: trio.SocketStream) -> None:
    """Abort the connection with a TCP RST."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    await stream.aclose()


async def close(stream: trio.SocketStream) -> None:
    """Close the connection in order (FIN), sending nothing more."""
    with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_eof()
    await stream.aclose()
