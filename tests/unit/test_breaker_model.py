"""The breaker agrees with a small reference model on random histories."""

from __future__ import annotations

import math

import attrs
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_resilience import (
    CircuitBreaker,
    CircuitBreakerOpenError,
    CircuitBreakerTicket,
    CircuitState,
)

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


# -- with tickets held open: probe slots, deadlines and late settles ----------------


@attrs.define(eq=False)
class ModelTicket:
    probe: bool
    deadline: float = float("inf")


@attrs.define
class SlotModel(Model):
    """The model above plus probe slots: a probe holds its slot until it settles or
    its deadline comes; a probe settled at or after its deadline counts as nothing."""

    max_probes: int = 1
    probe_timeout: float = float("inf")
    live: list[ModelTicket] = attrs.field(factory=list)  # this half-open period's

    def observe(self, now: float) -> CircuitState:
        old = self.state
        state = super().observe(now)
        if state is not old:
            self.live = []
        return state

    def _record(self, now: float, ok: bool) -> None:
        old = self.observe(now)
        if ok:
            self.success(now)
        else:
            self.failure(now)
        if self.state is not old:
            self.live = []

    def admit(self, now: float) -> ModelTicket | None:
        state = self.observe(now)
        if state is CLOSED:
            return ModelTicket(probe=False)
        if state is HALF_OPEN:
            self.live = [t for t in self.live if t.deadline > now]
            if len(self.live) < self.max_probes:
                ticket = ModelTicket(probe=True, deadline=now + self.probe_timeout)
                self.live.append(ticket)
                return ticket
        self.rejections += 1
        return None

    def settle(self, ticket: ModelTicket, ok: bool, now: float) -> None:
        if ticket.probe:
            if now >= ticket.deadline:
                return
            if ticket in self.live:
                self.live.remove(ticket)
        self._record(now, ok)

    def retry_after(self, now: float) -> float:
        state = self.observe(now)
        if state is OPEN:
            return self.opened_at + self.recovery - now
        deadlines = [t.deadline for t in self.live if t.deadline > now]
        if state is HALF_OPEN and len(deadlines) >= self.max_probes:
            return min(deadlines) - now if min(deadlines) < math.inf else 0.0
        return 0.0

    def half_open_calls(self, now: float) -> int:
        if self.observe(now) is not HALF_OPEN:
            return 0
        return sum(1 for t in self.live if t.deadline > now)


ticket_operations = st.lists(
    st.one_of(
        st.tuples(st.just("advance"), st.integers(0, 12).map(lambda q: q / 4)),
        st.tuples(st.just("admit"), st.just(False)),
        st.tuples(st.just("call"), st.booleans()),  # admit, then settle at once
        st.tuples(st.just("settle"), st.tuples(st.integers(0, 7), st.booleans())),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    threshold=st.integers(1, 2),
    recovery=st.sampled_from([0.0, 0.5, 2.0]),
    probes=st.integers(1, 3),
    probe_timeout=st.sampled_from([None, 0.25, 1.0, 2.5]),
    ops=ticket_operations,
)
def test_probe_slots_match_reference_model(
    threshold: int,
    recovery: float,
    probes: int,
    probe_timeout: float | None,
    ops: list[tuple[str, object]],
) -> None:
    """With tickets held across time, slots, deadlines and late settles match."""
    effective = probe_timeout if probe_timeout is not None else recovery or math.inf
    model = SlotModel(
        threshold=threshold,
        recovery=recovery,
        max_probes=probes,
        probe_timeout=effective,
    )

    async def main() -> None:
        breaker = CircuitBreaker(
            failure_threshold=threshold,
            recovery_timeout=recovery,
            half_open_max_calls=probes,
            half_open_probe_timeout=probe_timeout,
        )
        held: list[tuple[CircuitBreakerTicket, ModelTicket]] = []
        for op, arg in ops:
            now = trio.current_time()
            if op == "advance":
                assert isinstance(arg, float)
                await trio.sleep(arg)
            elif op in ("admit", "call"):
                expected = model.admit(now)
                try:
                    ticket = breaker.admit_nowait()
                except CircuitBreakerOpenError:
                    assert expected is None
                else:
                    assert expected is not None
                    assert ticket.is_probe == expected.probe
                    assert ticket.deadline == expected.deadline
                    if op == "admit":
                        held.append((ticket, expected))
                    else:
                        ticket.settle(None if arg else Boom())
                        model.settle(expected, bool(arg), now)
            elif held:
                assert isinstance(arg, tuple)
                index, ok = arg
                ticket, expected = held.pop(index % len(held))
                ticket.settle(None if ok else Boom())
                model.settle(expected, ok, now)
            now = trio.current_time()
            stats = breaker.statistics()
            assert stats.state is model.observe(now)
            assert stats.half_open_calls == model.half_open_calls(now)
            assert stats.retry_after == pytest.approx(model.retry_after(now))
            assert stats.total_rejections == model.rejections
            if stats.state is CLOSED:
                assert stats.consecutive_failures == model.failures

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
