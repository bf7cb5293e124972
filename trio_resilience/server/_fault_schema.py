"""The JSON form of a fault rule: what ``POST /faults`` accepts and ``GET`` serves.

The pydantic models check a rule field by field (a bad one is a 422 whose ``loc``
names it) and turn it into the `FaultRule` the plan holds. The action is one of
eight shapes, told apart by the one key that names its kind (``status``,
``delay_ms``, ``reset``, ``close``, ``hang``, ``drip_ms``, ``truncate``,
``commit_then_fail``).
"""

from __future__ import annotations

import email.utils
import secrets
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    StringConstraints,
    Tag,
    field_validator,
    model_validator,
)

from ._asgi import CONTROL_PREFIXES
from ._fault_rules import (
    Action,
    CommitThenFailAction,
    ConnectionAction,
    DelayAction,
    DripAction,
    FaultRule,
    Match,
    StatusAction,
    TruncateAction,
    new_seed,
)
from ._faults import MAX_FAIL_COUNT, MAX_FAIL_SECONDS

MAX_DELAY_MS = 300_000
"""The longest delay, jitter or drip (5 minutes); ``request_timeout`` still applies."""
MAX_RETRY_AFTER = 86_400 * 365
MAX_HEADERS = 32
SEED_BOUND = 2**63

Method = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{1,16}$", to_upper=True)]
HeaderName = Annotated[
    str,
    StringConstraints(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$", to_lower=True),
]
HeaderValue = Annotated[str, StringConstraints(pattern=r"^[\t\x20-\x7e]{0,4096}$")]
Status = Annotated[int, Field(ge=200, le=599)]
Milliseconds = Annotated[int, Field(ge=0, le=MAX_DELAY_MS)]

_STRICT = ConfigDict(extra="forbid")


class MatchIn(BaseModel):
    """Which requests the rule applies to; a field left out matches any request."""

    model_config = _STRICT

    method: Method | list[Method] | None = Field(
        None,
        description="A method or a list of methods (any case); default: any.",
    )
    path: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        pattern=r"^/",
        description=(
            "The request path, exact, or a glob: `*` matches any characters "
            "(`/` included), `?` one, `[...]` one of a set. Default: any path. "
            "Control routes (/faults, /requests, /fail/*, /health, docs) are "
            "never faulted."
        ),
    )
    scope: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description=(
            "Only requests whose X-Fault-Scope header is this; default: every "
            "request, scoped or not."
        ),
    )
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict,
        max_length=MAX_HEADERS,
        description="Headers the request must carry, values compared exactly.",
    )

    @field_validator("path")
    @classmethod
    def _not_a_control_route(cls, path: str | None) -> str | None:
        if path is not None and path.startswith(CONTROL_PREFIXES):
            raise ValueError(
                "control routes (/faults, /requests, /fail/*, /health, docs) "
                "are never faulted"
            )
        return path

    def to_match(self) -> Match:
        methods = [self.method] if isinstance(self.method, str) else self.method
        return Match(
            methods=None if methods is None else frozenset(methods),
            path=self.path,
            scope=self.scope,
            headers=tuple(
                (name.encode("latin-1"), value.encode("latin-1"))
                for name, value in sorted(self.headers.items())
            ),
        )


def _http_date(value: str) -> str:
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise ValueError(
            "retry_after must be seconds or an HTTP date such as "
            "'Wed, 21 Oct 2015 07:28:00 GMT'"
        ) from None
    return value


class StatusActionIn(BaseModel):
    """Answer this status at once; the route does not run."""

    model_config = _STRICT

    status: Status
    retry_after: (
        Annotated[int, Field(ge=0, le=MAX_RETRY_AFTER)]
        | Annotated[str, Field(min_length=1, max_length=64)]
        | None
    ) = Field(None, description="Retry-After: seconds, or an HTTP date.")
    body: JsonValue = Field(
        None,
        description='The JSON body; default {"detail": "Induced server failure"}.',
    )

    @field_validator("retry_after")
    @classmethod
    def _valid_retry_after(cls, value: int | str | None) -> int | str | None:
        return _http_date(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _bodiless_statuses(self) -> StatusActionIn:
        if self.status in (204, 304) and self.body is not None:
            raise ValueError(f"a {self.status} response has no body")
        return self

    def to_action(self) -> Action:
        return StatusAction(self.status, self.retry_after, self.body)


class DelayActionIn(BaseModel):
    """Wait, then run the route as usual."""

    model_config = _STRICT

    delay_ms: Milliseconds
    jitter_ms: Milliseconds = Field(
        0, description="Up to this much more, drawn from the rule's generator."
    )

    def to_action(self) -> Action:
        return DelayAction(self.delay_ms, self.jitter_ms)


class ResetActionIn(BaseModel):
    """Reset the connection (TCP RST), no response."""

    model_config = _STRICT

    reset: Literal[True]

    def to_action(self) -> Action:
        return ConnectionAction("reset")


class CloseActionIn(BaseModel):
    """Close the connection, no response."""

    model_config = _STRICT

    close: Literal[True]

    def to_action(self) -> Action:
        return ConnectionAction("close")


class HangActionIn(BaseModel):
    """Answer nothing until the client leaves or request_timeout (504)."""

    model_config = _STRICT

    hang: Literal[True]

    def to_action(self) -> Action:
        return ConnectionAction("hang")


class DripActionIn(BaseModel):
    """Run the route, then send its body a byte at a time over drip_ms."""

    model_config = _STRICT

    drip_ms: Annotated[int, Field(ge=1, le=MAX_DELAY_MS)]

    def to_action(self) -> Action:
        return DripAction(self.drip_ms)


class TruncateActionIn(BaseModel):
    """Run the route, send half its body under a full Content-Length, close."""

    model_config = _STRICT

    truncate: Literal[True]

    def to_action(self) -> Action:
        return TruncateAction()


class CommitThenFailActionIn(BaseModel):
    """Run the route (its side effect happens), then answer this status."""

    model_config = _STRICT

    commit_then_fail: Annotated[int, Field(ge=400, le=599)]

    def to_action(self) -> Action:
        return CommitThenFailAction(self.commit_then_fail)


ACTION_KINDS = (
    "status",
    "delay_ms",
    "reset",
    "close",
    "hang",
    "drip_ms",
    "truncate",
    "commit_then_fail",
)


def _action_kind(value: Any) -> str | None:
    """The tag of an action: the first kind it names (None if none: not an action)."""
    if isinstance(value, BaseModel):
        keys: Any = type(value).model_fields
    elif isinstance(value, dict):
        keys = value
    else:
        return None  # a list, a number...: pydantic reports the action invalid
    return next((kind for kind in ACTION_KINDS if kind in keys), None)


ActionIn = Annotated[
    Annotated[StatusActionIn, Tag("status")]
    | Annotated[DelayActionIn, Tag("delay_ms")]
    | Annotated[ResetActionIn, Tag("reset")]
    | Annotated[CloseActionIn, Tag("close")]
    | Annotated[HangActionIn, Tag("hang")]
    | Annotated[DripActionIn, Tag("drip_ms")]
    | Annotated[TruncateActionIn, Tag("truncate")]
    | Annotated[CommitThenFailActionIn, Tag("commit_then_fail")],
    Discriminator(
        _action_kind,
        custom_error_type="action_kind",
        custom_error_message=("action must hold one of: " + ", ".join(ACTION_KINDS)),
    ),
]


class FaultRuleIn(BaseModel):
    """A new fault rule: which requests, what happens to them, for how long."""

    model_config = _STRICT

    match: MatchIn = Field(default_factory=MatchIn)
    action: ActionIn
    times: Annotated[int, Field(ge=1, le=MAX_FAIL_COUNT)] | None = Field(
        None, description="Fire this many times, then stop; default: no limit."
    )
    duration_seconds: (
        Annotated[float, Field(gt=0, le=MAX_FAIL_SECONDS, allow_inf_nan=False)] | None
    ) = Field(None, description="Stop this long after creation; default: never.")
    probability: float = Field(
        1.0,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="Chance of firing for each matching request.",
    )
    seed: Annotated[int, Field(ge=-SEED_BOUND, lt=SEED_BOUND)] | None = Field(
        None,
        description=(
            "Seeds the rule's generator (probability, jitter); default: a random "
            "seed, shown in the stored rule so a run can be repeated."
        ),
    )

    def to_rule(self, rule_id: str | None = None) -> FaultRule:
        """The rule to store (a new id unless ``rule_id``); without a seed, one
        of `new_seed`'s."""
        return FaultRule(
            id=secrets.token_hex(6) if rule_id is None else rule_id,
            match=self.match.to_match(),
            action=self.action.to_action(),
            times=self.times,
            duration_seconds=self.duration_seconds,
            probability=self.probability,
            seed=new_seed() if self.seed is None else self.seed,
        )
