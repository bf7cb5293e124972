"""ResilientClient: one long-lived httpx.AsyncClient behind retry, breaker and bulkhead.

The send path is layered like httpx's own, one concern per method::

    request -> _send_with_retries -> _build_request (httpx's, errors mapped)
                                  -> [_send_hedged -> race (copies, _hedging)]
                                  -> _send_guarded (bulkhead, then the breaker
                                     of the request's origin: _breakers)
                                  -> _send_once (httpx, then the outcome mapped)

Under httpx, `PooledTransport` (or httpx's own transport, for what the pool does
not support: see `choose_transport`).

Every attempt of one call carries the same request id header. A request that cannot
be built (a bad URL) fails before it takes a bulkhead slot or a breaker admission.
Between attempts the retry loop sleeps its backoff holding no bulkhead slot. Every
httpx exception is translated by `map_httpx_exceptions`, nowhere else.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.request
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, NamedTuple, Self

import httpx
import trio

from .. import (
    Attempt,
    CircuitBreaker,
    CircuitBreakerOpenError,
    RetryBudget,
    RetryDetails,
    retry_context,
)
from ..limiters import acquire_on_behalf_of_within
from ..metrics import ClientMetrics
from ._breakers import Breakers, StateChangeHook
from ._config import ClientConfig, HedgingConfig, RetryConfig
from ._hedging import race
from ._pool import PooledTransport
from .errors import (
    APIError,
    CircuitOpenError,
    PoolTimeoutError,
    error_for_response,
    is_retryable,
    map_httpx_exceptions,
    retry_after_hint,
)

POLICY_CACHE_SIZE = 64
"""How many per-call ``retry=RetryConfig(...)`` policies a client keeps built."""
URL_CACHE_SIZE = 256
"""How many URL strings a client remembers the merged `httpx.URL` of."""

# httpx.AsyncClient.request's keywords that belong to send(), not build_request().
_SEND_KEYWORDS = ("auth", "follow_redirects")

RetryHook = Callable[[RetryDetails], object]


class ResilientClient:
    """An async HTTP client that retries, fails fast and limits itself.

    Use it as ``async with ResilientClient(config) as client:``; every method takes
    httpx's keywords plus ``request_id=`` (the idempotency key sent on every attempt;
    a UUID4 by default) and returns the `httpx.Response`, or raises one error from
    `trio_resilience.client.errors`. It starts no task, so closing it leaves nothing
    running; `close` may be called any number of times.

    ``transport`` replaces httpx's network transport (``httpx.MockTransport`` in unit
    tests). ``on_retry`` receives a `RetryDetails` before each backoff sleep, and
    ``on_circuit_state_change(old, new)`` each breaker transition: hooks for metrics.

    Each attempt may log one record on ``config.logging.logger_name``: a success at
    DEBUG, a failure that will be retried at INFO, the failure the call raises at
    WARNING (see `LoggingConfig` for the threshold).
    """

    def __init__(
        self,
        config: ClientConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        on_retry: RetryHook | None = None,
        on_circuit_state_change: StateChangeHook | None = None,
        metrics: ClientMetrics | None = None,
    ) -> None:
        self.config = config = ClientConfig() if config is None else config
        self._metrics = metrics
        self._log = logging.getLogger(config.logging.logger_name)
        if transport is not None:
            self._transport_kind = "custom"
        else:
            self._transport_kind, reason = choose_transport(config)
            transport = self._build_transport(reason)
        self._transport = transport
        timeout = config.timeout
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            timeout=httpx.Timeout(
                connect=timeout.connect,
                read=timeout.read,
                write=timeout.write,
                pool=timeout.pool,
            ),
            follow_redirects=config.follow_redirects,
            verify=config.verify_ssl,
            headers={"User-Agent": config.user_agent},
            limits=config.limits.httpx_limits(),
            http2=config.http2,
            proxy=config.proxy,
            transport=transport,
        )
        self._breakers = Breakers(
            config.circuit_breaker, on_circuit_state_change, metrics
        )
        self._bulkhead = trio.CapacityLimiter(config.bulkhead.max_concurrency)
        self._on_retry = on_retry
        # One retry policy per RetryConfig, built once (each `async for` over it
        # is a fresh loop): the client's own, and those calls ask for.
        self._policies: dict[RetryConfig, _Policy] = {}
        self._retry = self._policy_for(config.retry)
        self._log_threshold = config.logging.levelno
        self._urls: dict[str, httpx.URL] = {}
        self._closed = False

    def _build_transport(self, reason: str) -> httpx.AsyncBaseTransport | None:
        """The transport to hand httpx: ours, or None (httpx builds its own)."""
        config = self.config
        if self._transport_kind == "pooled":
            return PooledTransport(
                verify=config.verify_ssl,
                limits=config.limits.httpx_limits(),
                idempotency_headers=(config.request_id_header, "Idempotency-Key"),
            )
        if config.transport == "pooled":  # a fallback the caller did not ask for
            self._log.info("ResilientClient uses httpx's transport for %s", reason)
        if config.uds is None:
            return None  # httpx's own, with the environment's proxies if any
        return httpx.AsyncHTTPTransport(
            verify=config.verify_ssl,
            http2=config.http2,
            limits=config.limits.httpx_limits(),
            uds=config.uds,
        )

    @property
    def transport(self) -> str:
        """Which transport sends the requests: ``"pooled"`` (`PooledTransport`),
        ``"httpx"`` (httpx's own) or ``"custom"`` (the ``transport=`` given)."""
        return self._transport_kind

    @property
    def http_transport(self) -> httpx.AsyncBaseTransport | None:
        """The transport object in use; None when httpx built its own."""
        return self._transport

    @property
    def retry_budget(self) -> RetryBudget | None:
        """The retry budget of the client's own calls (``config.retry``); a call
        given its own ``retry=RetryConfig(...)`` has that config's budget."""
        return self._retry.budget

    @property
    def breaker(self) -> CircuitBreaker:
        """The circuit breaker shared by every call of this client (with
        ``per_host``, the base URL's origin's: see `breakers`)."""
        return self._breakers.for_url(httpx.URL(self.config.base_url or "http://"))

    @property
    def breakers(self) -> Mapping[str, CircuitBreaker]:
        """The breakers by origin (``"https://api.example:8443"``), a read-only
        view: with ``per_host``, one per origin called recently; otherwise the
        one shared breaker, under ``"*"``."""
        return self._breakers.view()

    @property
    def is_closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool; later calls raise `RuntimeError`."""
        if self._closed:
            return
        self._closed = True
        with trio.CancelScope(shield=True):
            await self._http.aclose()

    # -- the public verbs ------------------------------------------------------------

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kwargs)

    async def head(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("OPTIONS", url, **kwargs)

    async def request(
        self,
        method: str,
        url: str,
        *,
        request_id: str | None = None,
        retry: bool | RetryConfig = True,
        hedge: bool | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one logical call, retried as configured; see the class docstring.

        ``retry=False`` makes this call one attempt; ``retry=RetryConfig(...)``
        retries it by that configuration instead of the client's. ``hedge``:
        True hedges this call whatever its method, False never (None: as
        ``config.hedging`` says; see `HedgingConfig`).
        """
        hedging = self._hedging_for(method, hedge)
        policy, request_id, send_kwargs = self._prepare(request_id, retry, kwargs)
        return await self._send_with_retries(
            policy, method, url, request_id, kwargs, send_kwargs, None, hedging
        )

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        request_id: str | None = None,
        retry: bool | RetryConfig = True,
        **kwargs: Any,
    ) -> AsyncIterator[httpx.Response]:
        """``async with client.stream("GET", url) as response:``, its body unread.

        Retried like `request` up to the answer's head: a failure to connect or a
        5xx is tried again, and an error answer is read and raised as usual. Once
        the block has the response nothing is retried (its body may be half
        consumed): an httpx error raised in the block, a body cut short say,
        leaves it as ours (`APIConnectionError`), and the breaker has already
        counted the call a success. The bulkhead slot is held, and the response
        open, until the block exits.
        """
        policy, request_id, send_kwargs = self._prepare(request_id, retry, kwargs)
        async with contextlib.AsyncExitStack() as held:
            response = await self._send_with_retries(
                policy, method, url, request_id, kwargs, send_kwargs, held, None
            )
            with map_httpx_exceptions(request_id):
                yield response

    def _prepare(
        self, request_id: str | None, retry: bool | RetryConfig, kwargs: dict[str, Any]
    ) -> tuple[_Policy, str, dict[str, Any]]:
        """The call's retry policy and request id; ``kwargs`` left holding what
        goes to build_request, with the id header set; send()'s keywords."""
        self._check_open()
        policy = self._retry if retry is True else self._policy_for(retry)
        header = self.config.request_id_header
        given = kwargs.pop("headers", None)
        headers: httpx.Headers | dict[str, str]
        if given is None:
            headers = {}
        else:
            headers = httpx.Headers(given)
            if request_id is None:
                request_id = headers.get(header)
        if request_id is None:
            request_id = str(uuid.uuid4())
        headers[header] = request_id
        kwargs["headers"] = headers
        send_kwargs = {k: kwargs.pop(k) for k in _SEND_KEYWORDS if k in kwargs}
        return policy, request_id, send_kwargs

    # -- the layers ------------------------------------------------------------------

    async def _send_with_retries(
        self,
        policy: _Policy,
        method: str,
        url: str,
        request_id: str,
        build_kwargs: dict[str, Any],
        send_kwargs: dict[str, Any],
        held: contextlib.AsyncExitStack | None,
        hedging: HedgingConfig | None,
    ) -> httpx.Response:
        started = called = trio.current_time()
        number = 0
        metrics = self._metrics
        try:
            async for attempt in policy.attempts:
                with attempt:
                    number = attempt.num
                    started = trio.current_time()
                    request = self._build_request(method, url, request_id, build_kwargs)
                    if hedging is None:
                        response = await self._send_guarded(
                            request, request_id, send_kwargs, held
                        )
                    else:
                        response = await self._send_hedged(
                            request, (method, url, build_kwargs), send_kwargs,
                            hedging, policy.budget,
                        )  # fmt: skip
                    self._log_attempt(
                        logging.DEBUG, method, url, request_id, number, response,
                        started,
                    )  # fmt: skip
                    if metrics is not None:
                        metrics.attempt(method, None)
                        metrics.call(method, None, trio.current_time() - called)
                    return response
                # The attempt failed and will be retried, after `next_wait` s.
                assert attempt.exception is not None
                if metrics is not None:
                    metrics.attempt(method, attempt.exception)
                    metrics.retried(method).inc()
                self._log_attempt(
                    logging.INFO, method, url, request_id, number,
                    attempt.exception, started, next_delay=attempt.next_wait,
                )  # fmt: skip
        except APIError as error:
            error.attempts = number
            self._log_attempt(
                logging.WARNING, method, url, request_id, number, error, started
            )
            if metrics is not None:
                metrics.attempt(method, error)
                metrics.call(method, error, trio.current_time() - called)
            raise
        raise AssertionError("unreachable: the retry loop ended without a result")

    def _build_request(
        self, method: str, url: str, request_id: str, kwargs: dict[str, Any]
    ) -> httpx.Request:
        # Built afresh for each attempt, as httpx.AsyncClient.request would (cookies
        # the client received since are sent); a bad URL fails here, before a slot.
        # The URL httpx made of a string last time is reused (merging it with the
        # base URL costs two parses): the same string always makes the same URL.
        with map_httpx_exceptions(request_id):
            if type(url) is not str or "params" in kwargs:
                return self._http.build_request(method, url, **kwargs)
            known = self._urls.get(url)
            if known is not None:
                return self._http.build_request(method, known, **kwargs)
            request = self._http.build_request(method, url, **kwargs)
            if len(self._urls) >= URL_CACHE_SIZE:
                del self._urls[next(iter(self._urls))]  # the oldest
            self._urls[url] = request.url
            return request

    async def _send_hedged(
        self,
        request: httpx.Request,
        rebuild: tuple[str, str, dict[str, Any]],
        send_kwargs: dict[str, Any],
        hedging: HedgingConfig,
        budget: RetryBudget | None,
    ) -> httpx.Response:
        """One attempt and its hedges (`race`), each copy guarded as any."""
        request_id = request.headers[self.config.request_id_header]
        method, url, build_kwargs = rebuild

        def send(copy: httpx.Request, may_wait: bool) -> Awaitable[httpx.Response]:
            return self._send_guarded(
                copy, request_id, send_kwargs, None, wait_for_slot=may_wait
            )

        def copy() -> httpx.Request:
            return self._build_request(method, url, request_id, build_kwargs)

        metrics = self._metrics
        on_hedge = None if metrics is None else metrics.hedged(method).inc
        return await race(send, request, copy, hedging, budget, on_hedge)

    async def _send_guarded(
        self,
        request: httpx.Request,
        request_id: str,
        kwargs: dict[str, Any],
        held: contextlib.AsyncExitStack | None,
        *,
        wait_for_slot: bool = True,
    ) -> httpx.Response:
        """One attempt inside a bulkhead slot, admitted and settled by the breaker.

        With ``held`` (a stream), the answer's body is left unread and, once it
        is a success, the response's closing and the slot's release go to
        ``held``. Without ``wait_for_slot`` a slot must be free at once."""
        borrower: object | None = object()
        timeout = self.config.bulkhead.acquisition_timeout if wait_for_slot else 0
        metrics = self._metrics
        waited = None if metrics is None else metrics.bulkhead_wait
        if not await acquire_on_behalf_of_within(
            self._bulkhead, borrower, timeout, waited
        ):
            if metrics is not None:
                metrics.pool_timeouts.inc()
            raise PoolTimeoutError(
                f"no bulkhead slot free within {timeout:g}s "
                f"({self._bulkhead.total_tokens} in use)",
                request_id=request_id,
            )
        try:
            # The breaker's admission is synchronous: the request right after it
            # is the checkpoint, so this layer adds no trip through the scheduler.
            try:
                ticket = self._breakers.for_url(request.url).admit_nowait()
            except CircuitBreakerOpenError as rejected:
                raise CircuitOpenError(
                    state=rejected.state,
                    retry_after=rejected.retry_after,
                    request_id=request_id,
                ) from rejected
            try:
                response = await self._send_once(
                    request, request_id, kwargs, held is not None
                )
            except BaseException as exc:
                ticket.settle(exc)
                raise
            ticket.settle()
            if held is not None:
                held.callback(self._bulkhead.release_on_behalf_of, borrower)
                held.push_async_callback(response.aclose)  # first: LIFO
                borrower = None
            return response
        finally:
            if borrower is not None:
                self._bulkhead.release_on_behalf_of(borrower)

    async def _send_once(
        self,
        request: httpx.Request,
        request_id: str,
        kwargs: dict[str, Any],
        streamed: bool,
    ) -> httpx.Response:
        with map_httpx_exceptions(request_id):
            response = await self._http.send(request, stream=streamed, **kwargs)
            if streamed and response.is_error:
                try:
                    await response.aread()  # the error's detail
                finally:
                    await response.aclose()
        error = error_for_response(response, request_id)
        if error is not None:
            raise error
        return response

    # -- helpers ---------------------------------------------------------------------

    def _hedging_for(self, method: str, hedge: bool | None) -> HedgingConfig | None:
        hedging = self.config.hedging
        if hedge is False:
            return None
        if hedging is None:
            if hedge:
                raise ValueError(
                    "hedge=True needs ClientConfig(hedging=HedgingConfig(delay=...))"
                )
            return None
        if hedge or method.upper() in hedging.methods:
            return hedging
        return None

    def _policy_for(self, retry: bool | RetryConfig) -> _Policy:
        if retry is False:
            retry = _ONE_ATTEMPT
        elif not isinstance(retry, RetryConfig):
            raise TypeError(
                f"retry must be True, False or a RetryConfig, not {retry!r}"
            )
        policy = self._policies.get(retry)
        if policy is None:
            if len(self._policies) >= POLICY_CACHE_SIZE:
                del self._policies[next(iter(self._policies))]
            metrics = self._metrics
            budget = retry.budget(
                None if metrics is None else metrics.retries_refused.inc
            )
            attempts = retry_context(
                on=is_retryable,
                attempts=retry.max_attempts,
                backoff=retry.backoff(),
                wait_hint=retry_after_hint,
                on_retry=self._on_retry,
                budget=budget,
            )
            policy = self._policies[retry] = _Policy(attempts, budget)
        return policy

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this ResilientClient is closed")

    def _log_attempt(
        self,
        levelno: int,
        method: str,
        url: str,
        request_id: str,
        attempt: int,
        outcome: httpx.Response | BaseException,
        started: float,
        *,
        next_delay: float | None = None,
    ) -> None:
        # The config's threshold first (an int comparison), then the logger's own
        # level: a record below either is neither formatted nor created.
        if levelno < self._log_threshold or not self._log.isEnabledFor(levelno):
            return
        if isinstance(outcome, httpx.Response):
            result = str(outcome.status_code)
        else:
            result = type(outcome).__name__
        elapsed_ms = (trio.current_time() - started) * 1000
        fields: dict[str, Any] = {
            "method": method,
            "url": url,
            "attempt": attempt,
            "outcome": result,
            "elapsed_ms": round(elapsed_ms, 3),
            "next_delay": next_delay,
        }
        if self.config.logging.include_request_id:
            fields["request_id"] = request_id
        then = "giving up" if next_delay is None else f"retrying in {next_delay:.3f}s"
        if isinstance(outcome, httpx.Response):
            then = "done"
        rid = f" [{request_id}]" if self.config.logging.include_request_id else ""
        self._log.log(
            levelno,
            "%s %s attempt %d -> %s in %.1f ms; %s%s",
            method, url, attempt, result, elapsed_ms, then, rid,
            extra=fields,
        )  # fmt: skip


class _Policy(NamedTuple):
    """A call's retries: the loop's policy and the budget it draws on."""

    attempts: AsyncIterable[Attempt]
    budget: RetryBudget | None


_ONE_ATTEMPT = RetryConfig(max_attempts=1)
"""What ``retry=False`` means."""
_PROXY_VARIABLES = ("http", "https", "all")


def choose_transport(config: ClientConfig) -> tuple[str, str]:
    """``("pooled", "")`` or ``("httpx", why)``: what `ResilientClient` sends
    through, given ``config`` and the environment's proxy variables."""
    if config.transport == "httpx":
        return "httpx", "ClientConfig(transport='httpx')"
    if config.http2:
        return "httpx", "HTTP/2 (ClientConfig(http2=True))"
    if config.proxy is not None:
        return "httpx", "a proxy (ClientConfig(proxy=...))"
    if config.uds is not None:
        return "httpx", "a Unix socket (ClientConfig(uds=...))"
    found = urllib.request.getproxies_environment()
    names = [f"{name.upper()}_PROXY" for name in _PROXY_VARIABLES if found.get(name)]
    if names:
        return "httpx", f"a proxy from the environment ({', '.join(names)})"
    return "pooled", ""


@asynccontextmanager
async def create_resilient_client(
    config: ClientConfig | None = None, **kwargs: Any
) -> AsyncIterator[ResilientClient]:
    """``async with create_resilient_client(config) as client:``, closed on exit."""
    async with ResilientClient(config, **kwargs) as client:
        yield client
