"""ResilientClient's decisions, scripted with httpx.MockTransport on virtual time."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import attrs
import httpx
import pytest
import trio
import trio.testing

from trio_resilience import (
    BulkheadConfig,
    CircuitBreakerConfig,
    CircuitState,
    ClientConfig,
    LoggingConfig,
    ResilientClient,
    RetryConfig,
    RetryDetails,
    create_resilient_client,
)
from trio_resilience.client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    CircuitOpenError,
    ClientUsageError,
    InvalidRequestError,
    NotFoundError,
    PoolTimeoutError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
)

from ._httpx_cases import HTTPX_CASES, make

Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class Script:
    """A transport answering from a list of statuses or exceptions; records calls."""

    def __init__(self, *outcomes: int | Exception, delay: float = 0.0) -> None:
        self.outcomes = list(outcomes)
        self.delay = delay
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append(trio.current_time())
        await trio.sleep(self.delay)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return httpx.Response(outcome, json={"detail": f"status {outcome}"})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def request_ids(self) -> list[str]:
        return [r.headers["X-Request-ID"] for r in self.requests]


def config(**overrides: object) -> ClientConfig:
    """Exact, quick waits: 0.5 s, 1 s, 2 s, ... without jitter."""
    defaults: dict[str, object] = {
        "base_url": "http://service.test",
        "retry": RetryConfig(
            max_attempts=3, min_wait_seconds=0.5, max_wait_seconds=8, jitter=False
        ),
    }
    return ClientConfig(**{**defaults, **overrides})  # type: ignore[arg-type]


async def test_success_returns_the_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 200 comes back as the httpx.Response, with a UUID4 request id sent."""
    script = Script(200)
    async with ResilientClient(config(), transport=script.transport) as client:
        response = await client.get("/msg", params={"delay": 5})
    assert response.status_code == 200
    (request,) = script.requests
    assert request.url == "http://service.test/msg?delay=5"
    assert uuid.UUID(request.headers["X-Request-ID"]).version == 4
    assert request.headers["User-Agent"] == "trio-resilience"


async def test_retries_with_exact_backoff_and_one_request_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """503, 500, 200: three attempts at 0, 0.5, 1.5 s, all with the same id."""
    script = Script(503, 500, 200)
    async with ResilientClient(config(), transport=script.transport) as client:
        response = await client.post("/orders", json={"n": 1})
    assert response.status_code == 200
    assert script.times == [0.0, 0.5, 1.5]
    assert len(set(script.request_ids())) == 1
    assert all(r.content == b'{"n":1}' for r in script.requests)


async def test_given_request_id_is_used_on_every_attempt(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """request_id= (or an X-Request-ID header) is the idempotency key."""
    script = Script(500, 200)
    async with ResilientClient(config(), transport=script.transport) as client:
        await client.get("/msg", request_id="mine")
        await client.get("/msg", headers={"X-Request-ID": "from-header"})
    assert script.request_ids() == ["mine", "mine", "from-header"]


async def test_request_id_header_name_is_configurable(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """request_id_header changes the header that carries the key."""
    script = Script(200)
    cfg = config(request_id_header="Idempotency-Key")
    async with ResilientClient(cfg, transport=script.transport) as client:
        await client.put("/x", request_id="k1")
    assert script.requests[0].headers["Idempotency-Key"] == "k1"


async def test_non_retryable_status_raises_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 404 is raised after one attempt, with its data."""
    script = Script(404)
    async with ResilientClient(config(), transport=script.transport) as client:
        with pytest.raises(NotFoundError) as info:
            await client.get("/missing", request_id="r")
    assert len(script.requests) == 1
    assert (info.value.status_code, info.value.attempts) == (404, 1)
    assert info.value.request_id == "r"
    assert info.value.response is not None


async def test_last_error_after_all_attempts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """When attempts run out, the last attempt's mapped error is raised."""
    script = Script(500, 502, 503)
    async with ResilientClient(config(), transport=script.transport) as client:
        with pytest.raises(ServiceUnavailableError) as info:
            await client.get("/msg")
    assert info.value.status_code == 503
    assert info.value.attempts == 3
    assert trio.current_time() == 1.5


async def test_retry_after_is_honoured_and_capped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A 429's Retry-After replaces the backoff, capped at max_wait_seconds."""
    answers = [
        httpx.Response(429, headers={"Retry-After": "3"}),
        httpx.Response(429, headers={"Retry-After": "100"}),
        httpx.Response(200),
    ]
    times: list[float] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        times.append(trio.current_time())
        await trio.lowlevel.checkpoint()
        return answers.pop(0)

    async with ResilientClient(
        config(), transport=httpx.MockTransport(handler)
    ) as client:
        assert (await client.get("/x")).status_code == 200
    assert times == [0.0, 3.0, 11.0]


async def test_network_errors_are_retried_and_mapped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """httpx errors never escape: they become APIConnectionError / APITimeoutError."""
    script = Script(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"))
    async with ResilientClient(config(), transport=script.transport) as client:
        with pytest.raises(APITimeoutError) as info:
            await client.get("/x")
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert info.value.attempts == 3
    script = Script(httpx.ConnectError("refused"), 200)
    async with ResilientClient(config(), transport=script.transport) as client:
        assert (await client.get("/x")).status_code == 200


@pytest.mark.parametrize("cls", list(HTTPX_CASES), ids=lambda cls: cls.__name__)
async def test_every_httpx_exception_leaves_as_ours(
    autojump_clock: trio.testing.MockClock, cls: type[Exception]
) -> None:
    """A transport raising any httpx exception gives the table's error, from it."""
    expected, retried = HTTPX_CASES[cls]
    raised: list[Exception] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.lowlevel.checkpoint()
        raised.append(make(cls))
        raise raised[-1]

    async with ResilientClient(
        config(), transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(APIError) as info:
            await client.get("/x", request_id="rid")
        failures = client.breaker.statistics().total_failures
    assert type(info.value) is expected
    assert info.value.__cause__ is raised[-1]
    assert (info.value.request_id, info.value.attempts) == ("rid", len(raised))
    assert len(raised) == (3 if retried else 1)
    assert failures == (3 if retried else 0)


async def test_invalid_url_is_a_usage_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A real call to an unparsable URL raises ClientUsageError from InvalidURL."""
    async with ResilientClient(config(retry=RetryConfig(max_attempts=5))) as client:
        with pytest.raises(ClientUsageError) as info:
            await client.get("http://[::1", request_id="rid")
        with pytest.raises(ClientUsageError, match=r"^InvalidURL: URL too long$"):
            await client.get("/" + "a" * 70_000)
        stats = client.breaker.statistics()
    assert str(info.value) == "InvalidURL: Invalid port: ':1'"
    assert isinstance(info.value.__cause__, httpx.InvalidURL)
    assert (info.value.request_id, info.value.attempts) == ("rid", 1)
    assert (stats.total_failures, stats.total_successes) == (0, 0)
    assert trio.current_time() == 0.0


async def test_a_bad_url_fails_before_the_breaker_and_the_bulkhead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With the circuit open and every slot busy, a bad URL still says what it is."""
    script = Script(200, delay=5)
    cfg = config(
        bulkhead=BulkheadConfig(max_concurrency=1, acquisition_timeout=1),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
    )
    async with (
        ResilientClient(cfg, transport=script.transport) as client,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(client.get, "/slow")
        await trio.testing.wait_all_tasks_blocked()
        await client.breaker.record_failure()
        assert client.breaker.state is CircuitState.OPEN
        with pytest.raises(ClientUsageError):
            await client.get("http://[::1")
        assert trio.current_time() == 0.0
        assert client.breaker.statistics().total_rejections == 0
    assert len(script.requests) == 1


async def test_other_exceptions_are_not_mapped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """TypeError for bad arguments, or a transport's own exception, pass unchanged."""
    failure = ValueError("not httpx")
    sent: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        await trio.lowlevel.checkpoint()
        raise failure

    async with ResilientClient(
        config(), transport=httpx.MockTransport(handler)
    ) as client:
        with pytest.raises(TypeError, match=r"unexpected keyword argument 'bogus'"):
            await client.get("/x", bogus=1)
        with pytest.raises(TypeError, match=r"^Header value must be str or bytes"):
            await client.get("/x", headers={"X-Count": 1})
        with pytest.raises(TypeError, match=r"^Invalid type for url"):
            await client.get(5)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=r"^not httpx$") as info:
            await client.get("/x")
        assert info.value is failure
    assert len(sent) == 1  # not retried


async def test_send_keywords_reach_httpx(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """auth= and follow_redirects= still apply, as with httpx.AsyncClient.request."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        await trio.lowlevel.checkpoint()
        if request.url.path == "/old":
            return httpx.Response(302, headers={"Location": "/new"})
        return httpx.Response(200)

    async with ResilientClient(
        config(), transport=httpx.MockTransport(handler)
    ) as client:
        response = await client.get("/old", auth=("user", "pw"))
        assert (response.status_code, response.url.path) == (200, "/new")
        response = await client.get("/old", follow_redirects=False)
        assert response.status_code == 302
    assert seen[0].headers["Authorization"] == "Basic dXNlcjpwdw=="
    assert [r.url.path for r in seen] == ["/old", "/new", "/old"]


async def test_circuit_opens_and_fails_fast(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """After failure_threshold failed attempts the breaker rejects without sending."""
    script = Script(500)
    cfg = config(
        retry=RetryConfig(max_attempts=1),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, recovery_timeout=10),
    )
    async with ResilientClient(cfg, transport=script.transport) as client:
        for _ in range(2):
            with pytest.raises(ServerError):
                await client.get("/x")
        with pytest.raises(CircuitOpenError, match="Circuit breaker is OPEN") as info:
            await client.get("/x")
        assert isinstance(info.value, APIConnectionError)
        assert len(script.requests) == 2
        assert client.breaker.state is CircuitState.OPEN
        await trio.sleep(10)
        script.outcomes = [200]
        assert (await client.get("/x")).status_code == 200
        assert client.breaker.state is CircuitState.CLOSED


async def test_open_circuit_is_not_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The retry loop stops at an open circuit instead of sleeping into it."""
    script = Script(500)
    cfg = config(
        retry=RetryConfig(max_attempts=5, min_wait_seconds=0.5, jitter=False),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=2, recovery_timeout=60),
    )
    async with ResilientClient(cfg, transport=script.transport) as client:
        with pytest.raises(CircuitOpenError) as info:
            await client.get("/x")
    assert len(script.requests) == 2
    assert info.value.attempts == 3
    assert trio.current_time() == 1.5


async def test_half_open_probe_timeout_reaches_the_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A hung half-open probe frees its slot after half_open_probe_timeout."""
    script = Script(500, 200, 200, delay=0)
    cfg = config(
        retry=RetryConfig(max_attempts=1),
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=1, recovery_timeout=10, half_open_probe_timeout=3
        ),
    )
    async with ResilientClient(cfg, transport=script.transport) as client:
        with pytest.raises(ServerError):
            await client.get("/x")
        await trio.sleep(10)
        hung = client.breaker.admit_nowait()  # a probe that never settles
        with pytest.raises(CircuitOpenError) as info:
            await client.get("/x")
        assert info.value.retry_after == 3.0
        await trio.sleep(3)
        assert (await client.get("/x")).status_code == 200
        assert client.breaker.state is CircuitState.CLOSED
        hung.settle(RuntimeError("too late"))  # past its deadline: ignored
        assert client.breaker.state is CircuitState.CLOSED


async def test_usage_error_in_a_probe_leaves_the_circuit_half_open(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A request h11 refuses never reached the service: the probe decides nothing."""
    script = Script(500, 200)
    cfg = config(
        retry=RetryConfig(max_attempts=1),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1, recovery_timeout=5),
    )
    async with ResilientClient(cfg, transport=script.transport) as client:
        with pytest.raises(ServerError):
            await client.get("/x")
        await trio.sleep(5)
        script.outcomes = [httpx.LocalProtocolError("bad header")]
        with pytest.raises(ClientUsageError):
            await client.get("/x")
        assert client.breaker.state is CircuitState.HALF_OPEN
        script.outcomes = [200]
        assert (await client.get("/x")).status_code == 200
        assert client.breaker.state is CircuitState.CLOSED


async def test_client_errors_do_not_trip_the_breaker(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """4xx answers (429 included) never count as breaker failures."""
    script = Script(404, 429, 400, 404, 404, 404)
    cfg = config(
        retry=RetryConfig(max_attempts=1),
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
    )
    async with ResilientClient(cfg, transport=script.transport) as client:
        for _ in range(6):
            with pytest.raises((NotFoundError, RateLimitError, InvalidRequestError)):
                await client.get("/x")
        assert client.breaker.state is CircuitState.CLOSED


async def test_bulkhead_times_out_waiting_for_a_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With every slot busy, a call waits acquisition_timeout, then PoolTimeoutError."""
    script = Script(200, delay=5)
    cfg = config(bulkhead=BulkheadConfig(max_concurrency=1, acquisition_timeout=1))
    async with (
        ResilientClient(cfg, transport=script.transport) as client,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(client.get, "/slow")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(PoolTimeoutError) as info:
            await client.get("/fast")
        assert trio.current_time() == 1.0
        assert info.value.attempts == 1
    assert len(script.requests) == 1


async def test_backoff_sleeps_without_holding_a_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """While one call waits to retry, another call uses the only slot."""
    answers = {"/flaky": [503, 200], "/other": [200]}
    done: dict[str, float] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        await trio.lowlevel.checkpoint()
        return httpx.Response(answers[request.url.path].pop(0))

    cfg = config(
        retry=RetryConfig(min_wait_seconds=4, max_wait_seconds=4, jitter=False),
        bulkhead=BulkheadConfig(max_concurrency=1, acquisition_timeout=0.5),
    )
    async with ResilientClient(cfg, transport=httpx.MockTransport(handler)) as client:

        async def call(path: str) -> None:
            await client.get(path)
            done[path] = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, "/flaky")
            await trio.sleep(1)
            nursery.start_soon(call, "/other")
    assert done == {"/other": 1.0, "/flaky": 4.0}


async def test_never_sleeps_into_the_callers_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Inside a cancel scope, the real error is raised instead of sleeping past it."""
    script = Script(503)
    cfg = config(
        retry=RetryConfig(min_wait_seconds=5, max_wait_seconds=5, jitter=False)
    )
    async with ResilientClient(cfg, transport=script.transport) as client:
        with trio.move_on_after(2) as scope, pytest.raises(ServiceUnavailableError):
            await client.get("/x")
    assert not scope.cancelled_caught
    assert trio.current_time() == 0.0


async def test_cancellation_propagates_and_frees_the_slot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Cancelling a call in flight raises Cancelled, and its slot is released."""
    script = Script(200, delay=10)
    cfg = config(bulkhead=BulkheadConfig(max_concurrency=1, acquisition_timeout=0))
    async with ResilientClient(cfg, transport=script.transport) as client:
        with trio.move_on_after(1) as scope:
            await client.get("/slow")
        assert scope.cancelled_caught
        script.delay = 0
        assert (await client.get("/again")).status_code == 200
        assert client.breaker.statistics().total_failures == 0


async def test_per_call_timeout_override(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A timeout= keyword reaches httpx for that call only."""
    seen: list[dict[str, float]] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        await trio.lowlevel.checkpoint()
        return httpx.Response(200)

    async with ResilientClient(config(), transport=httpx.MockTransport(handler)) as c:
        await c.get("/a", timeout=1.5)
        await c.get("/b")
    assert seen[0] == {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}
    assert seen[1] == {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 10.0}


async def test_hooks_are_called(autojump_clock: trio.testing.MockClock) -> None:
    """on_retry gets each retry's details; on_circuit_state_change each transition."""
    retries: list[RetryDetails] = []
    changes: list[tuple[CircuitState, CircuitState]] = []
    script = Script(500, 500, 500)
    cfg = config(circuit_breaker=CircuitBreakerConfig(failure_threshold=3))
    async with ResilientClient(
        cfg,
        transport=script.transport,
        on_retry=retries.append,
        on_circuit_state_change=lambda old, new: changes.append((old, new)),
    ) as client:
        with pytest.raises(ServerError):
            await client.get("/x")
    assert [(d.attempt, d.delay) for d in retries] == [(1, 0.5), (2, 1.0)]
    assert all(isinstance(d.exception, ServerError) for d in retries)
    assert changes == [(CircuitState.CLOSED, CircuitState.OPEN)]


async def test_one_log_record_per_attempt(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Each attempt logs method, URL, attempt, outcome, elapsed and next delay."""
    script = Script(503, 200, delay=0.25)
    cfg = config(logging=LoggingConfig(level="DEBUG", logger_name="test.client"))
    caplog.set_level(logging.DEBUG, logger="test.client")
    async with ResilientClient(cfg, transport=script.transport) as client:
        await client.get("/x", request_id="log-id")
    records = [r for r in caplog.records if r.name == "test.client"]
    assert [(r.attempt, r.outcome, r.next_delay) for r in records] == [  # type: ignore[attr-defined]
        (1, "ServiceUnavailableError", 0.5),
        (2, "200", None),
    ]
    assert [r.levelno for r in records] == [logging.INFO, logging.DEBUG]
    assert all(r.request_id == "log-id" for r in records)  # type: ignore[attr-defined]
    assert all(r.elapsed_ms == 250.0 for r in records)  # type: ignore[attr-defined]
    assert "GET /x attempt 1 -> ServiceUnavailableError" in records[0].getMessage()


DBG, INF, WRN = logging.DEBUG, logging.INFO, logging.WARNING


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (None, [INF, INF, INF, WRN, WRN]),  # the default, "INFO"
        ("DEBUG", [INF, DBG, INF, INF, WRN, WRN]),
        ("INFO", [INF, INF, INF, WRN, WRN]),
        ("WARNING", [WRN, WRN]),
        ("ERROR", []),
    ],
)
async def test_level_is_a_threshold(
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
    level: str | None,
    expected: list[int],
) -> None:
    """Success at DEBUG, retry at INFO, final failure at WARNING; level filters them."""
    # Call 1: 503 then 200. Call 2: three 503s. Call 3: a 404, not retried.
    script = Script(503, 200, 503, 503, 503, 404)
    logs = LoggingConfig() if level is None else LoggingConfig(level=level)
    logs = attrs.evolve(logs, logger_name="test.threshold")
    caplog.set_level(logging.DEBUG, logger="test.threshold")
    async with ResilientClient(
        config(logging=logs), transport=script.transport
    ) as client:
        await client.get("/ok")
        with pytest.raises(ServiceUnavailableError):
            await client.get("/down")
        with pytest.raises(NotFoundError):
            await client.get("/missing")
    records = [r for r in caplog.records if r.name == "test.threshold"]
    assert [r.levelno for r in records] == expected


async def test_the_logger_level_filters_too(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A record is emitted only if the logger is enabled for it as well."""
    script = Script(503, 503, 503)
    cfg = config(logging=LoggingConfig(level="DEBUG", logger_name="test.both"))
    caplog.set_level(logging.WARNING, logger="test.both")
    made: list[logging.LogRecord] = []
    logger = logging.getLogger("test.both")
    real_make = logger.makeRecord

    def spy(*args: object, **kwargs: object) -> logging.LogRecord:
        made.append(real_make(*args, **kwargs))  # type: ignore[arg-type]
        return made[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logger, "makeRecord", spy)
        async with ResilientClient(cfg, transport=script.transport) as client:
            with pytest.raises(ServiceUnavailableError):
                await client.get("/x")
    assert [r.levelno for r in made] == [logging.WARNING]  # nothing else was built
    assert logger.level == logging.WARNING  # the client never set it


async def test_closed_client_refuses_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """close() is idempotent; a closed client raises a clear RuntimeError."""
    client = ResilientClient(config(), transport=Script(200).transport)
    await client.close()
    await client.close()
    assert client.is_closed
    with pytest.raises(RuntimeError, match=r"^this ResilientClient is closed$"):
        await client.get("/x")


async def test_create_resilient_client(autojump_clock: trio.testing.MockClock) -> None:
    """create_resilient_client is an async context manager closing the client."""
    async with create_resilient_client(config(), transport=Script(200).transport) as c:
        assert (await c.get("/x")).status_code == 200
    assert c.is_closed


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: RetryConfig(max_attempts=0), r"^max_attempts must be >= 1$"),
        (
            lambda: RetryConfig(min_wait_seconds=5, max_wait_seconds=1),
            r"^max_wait_seconds must be >= min_wait_seconds$",
        ),
        (lambda: BulkheadConfig(max_concurrency=0), r"^max_concurrency must be >= 1$"),
        (
            lambda: CircuitBreakerConfig(failure_threshold=0),
            r"^failure_threshold must be >= 1$",
        ),
        (
            lambda: CircuitBreakerConfig(half_open_probe_timeout=0),
            r"^half_open_probe_timeout must be > 0$",
        ),
        (lambda: LoggingConfig(level="LOUD"), r"^level must be a logging level name"),
        (
            lambda: ClientConfig(base_url="http://[::1"),
            r"^base_url is not a valid URL: Invalid port: ':1'$",
        ),
    ],
)
def test_config_validation(make: Callable[[], object], message: str) -> None:
    """Bad configuration raises ValueError with an exact message."""
    with pytest.raises(ValueError, match=message):
        make()


def test_config_defaults() -> None:
    """Defaults follow the seeds' client guide."""
    cfg = ClientConfig()
    assert (cfg.timeout.connect, cfg.timeout.read, cfg.timeout.write) == (5, 30, 30)
    assert cfg.timeout.pool == 10
    assert (cfg.retry.max_attempts, cfg.retry.min_wait_seconds) == (3, 1.0)
    assert (cfg.retry.max_wait_seconds, cfg.retry.multiplier) == (60.0, 2.0)
    assert cfg.retry.jitter is True
    assert (
        cfg.circuit_breaker.failure_threshold,
        cfg.circuit_breaker.recovery_timeout,
    ) == (5, 30.0)
    assert (cfg.bulkhead.max_concurrency, cfg.bulkhead.acquisition_timeout) == (10, 5.0)
    assert (cfg.logging.level, cfg.logging.logger_name) == ("INFO", "resilient_client")
    assert cfg.verify_ssl is True
