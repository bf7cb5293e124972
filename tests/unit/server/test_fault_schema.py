"""The JSON form of a fault rule: every bad field is named, good ones are stored."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from pydantic import ValidationError

from trio_resilience.server._fault_rules import (
    CommitThenFailAction,
    ConnectionAction,
    DelayAction,
    DripAction,
    StatusAction,
    TruncateAction,
)
from trio_resilience.server._fault_schema import FaultRuleIn


def problems(body: dict[str, Any]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        FaultRuleIn.model_validate(body)
    return [(error["loc"], error["type"]) for error in caught.value.errors()]


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ({"status": 503, "retry_after": 7}, StatusAction(503, 7)),
        (
            {"status": 429, "retry_after": "Wed, 21 Oct 2015 07:28:00 GMT"},
            StatusAction(429, "Wed, 21 Oct 2015 07:28:00 GMT"),
        ),
        ({"status": 200, "body": [1, "x"]}, StatusAction(200, None, [1, "x"])),
        ({"delay_ms": 100}, DelayAction(100, 0)),
        ({"delay_ms": 0, "jitter_ms": 5}, DelayAction(0, 5)),
        ({"reset": True}, ConnectionAction("reset")),
        ({"close": True}, ConnectionAction("close")),
        ({"hang": True}, ConnectionAction("hang")),
        ({"drip_ms": 250}, DripAction(250)),
        ({"truncate": True}, TruncateAction()),
        ({"commit_then_fail": 502}, CommitThenFailAction(502)),
    ],
)
def test_each_action_kind(action: dict[str, Any], expected: object) -> None:
    rule = FaultRuleIn.model_validate({"action": action}).to_rule()
    assert rule.action == expected
    assert rule.action.to_json() | action == rule.action.to_json()


async def test_a_rule_keeps_its_match_budget_and_seed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rule = FaultRuleIn.model_validate(
        {
            "match": {
                "method": "post",
                "path": "/api/v1/*",
                "scope": "t1",
                "headers": {"X-Flaky": "yes"},
            },
            "action": {"status": 500},
            "times": 3,
            "duration_seconds": 2.5,
            "probability": 0.25,
            "seed": 42,
        }
    ).to_rule()
    assert rule.match.methods == frozenset({"POST"})
    assert rule.match.headers == ((b"x-flaky", b"yes"),)
    assert (rule.times, rule.duration_seconds, rule.probability, rule.seed) == (
        3,
        2.5,
        0.25,
        42,
    )


def test_without_a_seed_one_is_chosen_and_shown() -> None:
    seeds = {
        FaultRuleIn.model_validate({"action": {"hang": True}}).to_rule().seed
        for _ in range(5)
    }
    assert len(seeds) > 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, [(("action",), "missing")]),
        ({"action": {}}, [(("action",), "action_kind")]),
        ({"action": {"nope": 1}}, [(("action",), "action_kind")]),
        ({"action": [None, None]}, [(("action",), "action_kind")]),
        ({"action": "reset"}, [(("action",), "action_kind")]),
        (
            {"action": {"status": 500, "reset": True}},
            [(("action", "status", "reset"), "extra_forbidden")],
        ),
        (
            {"action": {"status": 99}},
            [(("action", "status", "status"), "greater_than_equal")],
        ),
        (
            {"action": {"status": 600}},
            [(("action", "status", "status"), "less_than_equal")],
        ),
        (
            {"action": {"status": 503, "retry_after": -1}},
            [
                (
                    ("action", "status", "retry_after", "constrained-int"),
                    "greater_than_equal",
                ),
                (("action", "status", "retry_after", "constrained-str"), "string_type"),
            ],
        ),
        (
            {"action": {"status": 503, "retry_after": "soon"}},
            [(("action", "status", "retry_after"), "value_error")],
        ),
        (
            {"action": {"status": 204, "body": {"a": 1}}},
            [(("action", "status"), "value_error")],
        ),
        (
            {"action": {"reset": False}},
            [(("action", "reset", "reset"), "literal_error")],
        ),
        (
            {"action": {"drip_ms": 0}},
            [(("action", "drip_ms", "drip_ms"), "greater_than_equal")],
        ),
        (
            {"action": {"delay_ms": 300_001}},
            [(("action", "delay_ms", "delay_ms"), "less_than_equal")],
        ),
        (
            {"action": {"commit_then_fail": 200}},
            [
                (
                    ("action", "commit_then_fail", "commit_then_fail"),
                    "greater_than_equal",
                )
            ],
        ),
        ({"action": {"hang": True}, "times": 0}, [(("times",), "greater_than_equal")]),
        (
            {"action": {"hang": True}, "probability": 0},
            [(("probability",), "greater_than")],
        ),
        (
            {"action": {"hang": True}, "probability": 1.5},
            [(("probability",), "less_than_equal")],
        ),
        (
            {"action": {"hang": True}, "duration_seconds": 0},
            [(("duration_seconds",), "greater_than")],
        ),
        ({"action": {"hang": True}, "extra": 1}, [(("extra",), "extra_forbidden")]),
        (
            {"action": {"hang": True}, "match": {"path": "msg"}},
            [(("match", "path"), "string_pattern_mismatch")],
        ),
        (
            {"action": {"hang": True}, "match": {"path": "/faults"}},
            [(("match", "path"), "value_error")],
        ),
        (
            {"action": {"hang": True}, "match": {"path": "/health"}},
            [(("match", "path"), "value_error")],
        ),
        (
            {"action": {"hang": True}, "match": {"method": "GE T"}},
            [
                (("match", "method", "constrained-str"), "string_pattern_mismatch"),
                (("match", "method", "list[constrained-str]"), "list_type"),
            ],
        ),
        (
            {"action": {"hang": True}, "match": {"headers": {"bad name": "x"}}},
            [(("match", "headers", "bad name", "[key]"), "string_pattern_mismatch")],
        ),
        (
            {"action": {"hang": True}, "match": {"scope": ""}},
            [(("match", "scope"), "string_too_short")],
        ),
    ],
)
def test_a_bad_field_is_named(
    body: dict[str, Any], expected: list[tuple[tuple[str | int, ...], str]]
) -> None:
    assert problems(body) == expected
