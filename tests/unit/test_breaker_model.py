"""The breaker agrees with a small reference model on random histories."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_resilience import CircuitBreaker, CircuitBreakerOpenError, CircuitState

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


@attrs.define
class Model:
    """The documented state machine, written as plainly as possible."""

    threshold: int
    recovery: float
    state: CircuitState = CLOSED
    failures: int = 0
    opened_at: float = 0.0
    rejections: int = 0

    def observe(self, now: float) -> CircuitState:
        if self.state is OPEN and now >= self.opened_at + self.recovery:
            self.state = HALF_OPEN
        return self.state

    def success(self, now: float) -> None:
        if self.observe(now) is not OPEN:
            self.state, self.failures = CLOSED, 0

    def failure(self, now: float) -> None:
        state = self.observe(now)
        if state is CLOSED:
            self.failures += 1
            if self.failures >= self.threshold:
                self.state, self.opened_at = OPEN, now
        elif state is HALF_OPEN:
            self.state, self.opened_at = OPEN, now

    def call(self, now: float, ok: bool) -> bool:
        """Returns whether the call was admitted."""
        if self.observe(now) is OPEN:
            self.rejections += 1
            return False
        if ok:
            self.success(now)
        else:
            self.failure(now)
        return True


operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 60).map(lambda q: q / 4)),
        st.tuples(st.just("record"), st.booleans()),
        st.tuples(st.just("call"), st.booleans()),
    ),
    max_size=60,
)


class Boom(Exception):
    pass


@settings(max_examples=300, deadline=None)
@given(
    threshold=st.integers(1, 5),
    recovery=st.sampled_from([0.0, 0.25, 1.0, 2.5, 10.0]),
    probes=st.integers(1, 3),
    ops=operations,
)
def test_breaker_matches_reference_model(
    threshold: int,
    recovery: float,
    probes: int,
    ops: list[tuple[str, float | bool]],
) -> None:
    """After every step, state, streak, counters and time-to-probe match the model."""
    model = Model(threshold=threshold, recovery=recovery)

    async def main() -> None:
        breaker = CircuitBreaker(
            failure_threshold=threshold,
            recovery_timeout=recovery,
            half_open_max_calls=probes,
        )
        for op, arg in ops:
            now = trio.current_time()
            if op == "advance":
                await trio.sleep(arg)
            elif op == "record":
                if arg:
                    await breaker.record_success()
                    model.success(now)
                else:
                    await breaker.record_failure()
                    model.failure(now)
            else:
                admitted = model.call(now, bool(arg))
                try:
                    async with breaker:
                        if not arg:
                            raise Boom
                except CircuitBreakerOpenError:
                    assert not admitted
                except Boom:
                    assert admitted
                else:
                    assert admitted
            now = trio.current_time()
            stats = breaker.statistics()
            assert stats.state is model.observe(now)
            assert stats.total_rejections == model.rejections
            if stats.state is CLOSED:
                assert stats.consecutive_failures == model.failures
            if stats.state is OPEN:
                assert stats.seconds_until_half_open == pytest.approx(
                    model.opened_at + recovery - now
                )

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
