"""Backoff: the exact delay formula, jitter bounds and argument checks."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trio_resilience import Backoff


def test_defaults() -> None:
    """Defaults are initial=0.1, maximum=5.0, multiplier=2.0, jitter=True."""
    assert Backoff() == Backoff(initial=0.1, maximum=5.0, multiplier=2.0, jitter=True)


def test_exponential_sequence_without_jitter() -> None:
    """Without jitter the delays double from initial and stop at maximum."""
    backoff = Backoff(initial=0.5, maximum=5.0, multiplier=2.0, jitter=False)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_delay_is_a_float_even_for_int_arguments() -> None:
    """Int arguments still give float delays."""
    delay = Backoff(initial=1, maximum=10, multiplier=3, jitter=False).delay(2)
    assert delay == 3.0
    assert isinstance(delay, float)


def test_multiplier_one_is_constant() -> None:
    """multiplier=1 gives a constant delay."""
    backoff = Backoff(initial=0.25, maximum=1.0, multiplier=1.0, jitter=False)
    assert {backoff.delay(n) for n in range(1, 50)} == {0.25}


def test_huge_attempt_numbers_are_capped_not_overflowing() -> None:
    """Attempt numbers far past the cap still return maximum."""
    backoff = Backoff(initial=0.1, maximum=7.0, multiplier=10.0, jitter=False)
    assert backoff.delay(10_000) == 7.0


@given(
    initial=st.floats(0, 10),
    extra=st.floats(0, 100),
    multiplier=st.floats(1, 10),
    attempt=st.integers(1, 2_000),
)
def test_formula_without_jitter(
    initial: float, extra: float, multiplier: float, attempt: int
) -> None:
    """delay(n) == min(maximum, initial * multiplier ** (n - 1)) exactly."""
    maximum = initial + extra
    backoff = Backoff(
        initial=initial, maximum=maximum, multiplier=multiplier, jitter=False
    )
    try:
        expected = min(maximum, initial * multiplier ** (attempt - 1))
    except OverflowError:
        expected = maximum
    assert backoff.delay(attempt) == expected


@given(
    initial=st.floats(0, 10),
    extra=st.floats(0, 100),
    multiplier=st.floats(1, 10),
    attempt=st.integers(1, 2_000),
)
def test_jitter_stays_within_zero_and_the_unjittered_delay(
    initial: float, extra: float, multiplier: float, attempt: int
) -> None:
    """With jitter, 0 <= delay(n) <= the unjittered delay <= maximum."""
    maximum = initial + extra
    jittered = Backoff(initial=initial, maximum=maximum, multiplier=multiplier)
    plain = Backoff(
        initial=initial, maximum=maximum, multiplier=multiplier, jitter=False
    )
    delay = jittered.delay(attempt)
    assert 0.0 <= delay <= plain.delay(attempt) <= maximum


def test_jitter_actually_varies() -> None:
    """Jittered delays are spread out, not a constant."""
    backoff = Backoff(initial=1.0, maximum=1.0)
    delays = {backoff.delay(1) for _ in range(200)}
    assert len(delays) > 100
    assert min(delays) < 0.25
    assert max(delays) > 0.75


def test_frozen() -> None:
    """A Backoff is an immutable value."""
    backoff = Backoff()
    with pytest.raises(AttributeError):
        backoff.initial = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": -0.1}, r"^initial must be >= 0$"),
        ({"initial": math.nan}, r"^initial must be >= 0$"),
        ({"initial": math.inf, "maximum": math.inf}, r"^initial must be finite$"),
        ({"maximum": -1.0, "initial": 0}, r"^maximum must be >= 0$"),
        ({"initial": 2.0, "maximum": 1.0}, r"^maximum must be >= initial$"),
        ({"maximum": math.inf}, r"^maximum must be finite$"),
        ({"multiplier": 0.5}, r"^multiplier must be >= 1$"),
        ({"multiplier": math.inf}, r"^multiplier must be finite$"),
    ],
)
def test_invalid_values(kwargs: dict[str, float], message: str) -> None:
    """Out-of-range arguments raise ValueError with an exact message."""
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial": "1"}, r"^initial must be a number, not str$"),
        ({"maximum": None}, r"^maximum must be a number, not NoneType$"),
        ({"multiplier": True}, r"^multiplier must be a number, not bool$"),
        ({"jitter": 1}, r"^jitter must be a bool, not int$"),
    ],
)
def test_invalid_types(kwargs: dict[str, object], message: str) -> None:
    """Arguments of the wrong type raise TypeError with an exact message."""
    with pytest.raises(TypeError, match=message):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_invalid_attempt() -> None:
    """delay() takes attempt numbers from 1."""
    with pytest.raises(ValueError, match=r"^attempt must be >= 1$"):
        Backoff().delay(0)
    with pytest.raises(TypeError, match=r"^attempt must be an int, not float$"):
        Backoff().delay(1.0)  # type: ignore[arg-type]
