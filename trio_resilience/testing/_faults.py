"""`FaultClient`: fault rules and the request journal of a test server, from Python.

A thin typed layer over ``POST/GET/DELETE /faults`` and ``GET/DELETE /requests``
(and ``GET /metrics``).
Each call opens its own short-lived connection (sharing one TLS context), so a
`FaultClient` has no lifetime to manage: it can be made at module level, used from
any `trio.run` and dropped.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx

from ._metrics import MetricsSnapshot

SCOPE_HEADER = "X-Fault-Scope"


class FaultRuleError(ValueError):
    """The server refused a rule (422: a field is invalid; 409: too many rules)."""

    def __init__(self, status_code: int, detail: Any) -> None:
        super().__init__(f"the server refused the fault rule ({status_code}): {detail}")
        self.status_code = status_code
        self.detail = detail


class FaultClient:
    """Adds and clears the fault rules of one server, and reads what it received.

    With a ``scope``, every rule added matches only requests sent with the header
    ``X-Fault-Scope: <scope>`` (`headers` holds it, for the client under test), and
    `clear` and `requests` see only that scope: tests sharing one server do not
    see each other's rules or requests. ``token`` is the server's control token,
    if it has one.
    """

    def __init__(
        self, base_url: str, scope: str | None = None, *, token: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.scope = scope
        self._auth = {} if token is None else {"Authorization": f"Bearer {token}"}

    @property
    def headers(self) -> dict[str, str]:
        """The header that puts a request in this client's scope (none without)."""
        return {} if self.scope is None else {SCOPE_HEADER: self.scope}

    async def add(
        self,
        *,
        method: str | list[str] | None = None,
        path: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
        retry_after: int | str | None = None,
        body: Any = None,
        delay_ms: int | None = None,
        jitter_ms: int = 0,
        reset: bool = False,
        close: bool = False,
        hang: bool = False,
        drip_ms: int | None = None,
        truncate: bool = False,
        commit_then_fail: int | None = None,
        times: int | None = None,
        duration_seconds: float | None = None,
        probability: float = 1.0,
        seed: int | None = None,
    ) -> str:
        """Add a rule and return its id.

        Name exactly one action: ``status`` (with ``retry_after`` and ``body``),
        ``delay_ms`` (with ``jitter_ms``), ``reset``, ``close``, ``hang``,
        ``drip_ms``, ``truncate`` or ``commit_then_fail``. ``method``, ``path``
        (exact or glob) and ``headers`` choose the requests; the scope is the
        client's. Raises `ValueError` for no action or several, `FaultRuleError`
        when the server refuses the rule.
        """
        given = {
            "status": status,
            "delay_ms": delay_ms,
            "reset": reset or None,
            "close": close or None,
            "hang": hang or None,
            "drip_ms": drip_ms,
            "truncate": truncate or None,
            "commit_then_fail": commit_then_fail,
        }
        kinds = [kind for kind, value in given.items() if value is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"name exactly one action ({', '.join(given)}); got {kinds or 'none'}"
            )
        [kind] = kinds
        action: dict[str, Any] = {kind: given[kind]}
        if kind == "status":
            action |= {"retry_after": retry_after, "body": body}
        elif kind == "delay_ms":
            action["jitter_ms"] = jitter_ms
        match: dict[str, Any] = {"method": method, "path": path, "scope": self.scope}
        if headers:
            match["headers"] = headers
        rule = {
            "match": match,
            "action": action,
            "times": times,
            "duration_seconds": duration_seconds,
            "probability": probability,
            "seed": seed,
        }
        async with self._client() as client:
            response = await client.post("/faults", json=rule)
        if response.status_code in (409, 422):
            raise FaultRuleError(response.status_code, response.json()["detail"])
        response.raise_for_status()
        rule_id: str = response.json()["id"]
        return rule_id

    async def rules(self) -> list[dict[str, Any]]:
        """The rules of this scope (all without one), as ``GET /faults`` serves them."""
        async with self._client() as client:
            response = await client.get("/faults", params=self._scope_query())
        response.raise_for_status()
        rules: list[dict[str, Any]] = response.json()["rules"]
        return rules

    async def remove(self, rule_id: str) -> bool:
        """Delete one rule; False if the server has none with this id."""
        async with self._client() as client:
            response = await client.delete(f"/faults/{rule_id}")
        if response.status_code == 404:
            return False
        response.raise_for_status()
        return True

    async def clear(self) -> None:
        """Delete the rules of this scope (all of them without a scope)."""
        async with self._client() as client:
            response = await client.delete("/faults", params=self._scope_query())
        response.raise_for_status()

    async def requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """What the server received in this scope (all without one), in order of
        arrival (``limit``: the last ``limit`` to finish), each entry recorded
        before its client saw the response end:
        ``at`` (Unix seconds on the server's clock), ``method``, ``path``,
        ``query``, ``request_id``, ``scope``, ``status``, ``outcome``, ``fault``
        (the id of the rule that fired), ``duration_ms``."""
        query = self._scope_query()
        if limit is not None:
            query["limit"] = str(limit)
        async with self._client() as client:
            response = await client.get("/requests", params=query)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries

    async def clear_requests(self) -> None:
        """Forget the journal entries of this scope (all without one)."""
        async with self._client() as client:
            response = await client.delete("/requests", params=self._scope_query())
        response.raise_for_status()

    async def metrics(self) -> MetricsSnapshot:
        """The server's ``GET /metrics``, parsed. Metrics have no scope: they
        count every request the server handled."""
        async with self._client() as client:
            response = await client.get("/metrics")
        response.raise_for_status()
        return MetricsSnapshot.parse(response.text)

    def _scope_query(self) -> dict[str, str]:
        return {} if self.scope is None else {"scope": self.scope}

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers=self._auth,
            timeout=10,
            verify=_tls_context(),
        )


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every call: making one costs some 40 ms of CPU, which
    a client made per call would spend each time (blocking the test's run)."""
    return ssl.create_default_context()
