"""Fault rules: which requests fail on purpose, and how (the model of ``/faults``).

A `FaultRule` pairs a `Match` (method, path exact or glob, scope, headers) with one
action and a budget (``times``, ``duration_seconds``, ``probability`` with a seed).
A `FaultPlan` holds the rules and answers, for each request, which rule fires: the
oldest live rule whose match accepts the request and whose dice (if any) say yes.

The check runs on every request outside the control routes, so it is built to cost
next to nothing when no rule applies: rules are indexed by scope and then by exact
path, so a request only looks at the rules of its own path and scope plus those with
a glob (or no) path; a rule leaves the index once spent or expired.
"""

from __future__ import annotations

import heapq
import math
import random
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from fnmatch import translate
from typing import Any, ClassVar

import attrs
import trio

from .._runbound import RunBound, current_run
from ._asgi import SCOPE_HEADER, find_header

GLOB_CHARACTERS = frozenset("*?[")


def _glob_prefix(path: str) -> str:
    """``path`` up to its first glob character (all of it if it has none)."""
    for index, character in enumerate(path):
        if character in GLOB_CHARACTERS:
            return path[:index]
    return path


@attrs.frozen
class Match:
    """Which requests a rule applies to; every field given must match.

    ``methods`` None: any method. ``path`` None: any path; a path holding ``*``,
    ``?`` or ``[...]`` is a glob where ``*`` matches any characters, ``/``
    included. ``scope`` None: every request, else only requests whose
    ``X-Fault-Scope`` header is exactly ``scope``. ``headers``: (lower-case name,
    value) pairs the request must carry, values compared exactly.
    """

    methods: frozenset[str] | None = None
    path: str | None = None
    scope: str | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    _prefix: str = attrs.field(init=False, eq=False, repr=False)
    _pattern: re.Pattern[str] | None = attrs.field(init=False, eq=False, repr=False)

    @_prefix.default
    def _literal_prefix(self) -> str:
        return "" if self.path is None else _glob_prefix(self.path)

    @_pattern.default
    def _compile(self) -> re.Pattern[str] | None:
        if self.path is None or self._prefix == self.path:
            return None  # any path, or an exact one
        return re.compile(translate(self.path))

    @property
    def exact_path(self) -> str | None:
        """The path when it is exact (not a glob), else None."""
        return self.path if self._pattern is None else None

    @property
    def segment(self) -> str | None:
        """For a glob, the first path segment every path it matches has, if its
        literal start spells the segment out (``/api/*`` -> ``api``); else None."""
        if self._pattern is None:
            return None
        end = self._prefix.find("/", 1)
        return None if end == -1 else self._prefix[1:end]

    def accepts(
        self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> bool:
        """Whether a request of ``method`` to ``path`` with ``headers`` matches,
        its scope aside (the plan's index has already chosen by scope and, for an
        exact path, by path)."""
        if self.methods is not None and method not in self.methods:
            return False
        pattern = self._pattern
        if pattern is not None and not (
            path.startswith(self._prefix) and pattern.match(path)
        ):
            return False
        if self.headers:
            given = {(name.lower(), value) for name, value in headers}
            return all(pair in given for pair in self.headers)
        return True


@attrs.frozen
class StatusAction:
    """Answer ``status`` (with ``Retry-After`` and a JSON body), skipping the route."""

    status: int
    retry_after: int | str | None = None
    body: Any = None
    kind: ClassVar[str] = "status"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "retry_after": self.retry_after,
            "body": self.body,
        }


@attrs.frozen
class DelayAction:
    """Wait ``delay_ms`` plus up to ``jitter_ms`` (drawn from the rule's generator),
    then run the route as usual."""

    delay_ms: int
    jitter_ms: int = 0
    kind: ClassVar[str] = "delay"

    def to_json(self) -> dict[str, Any]:
        return {"delay_ms": self.delay_ms, "jitter_ms": self.jitter_ms}


@attrs.frozen
class ConnectionAction:
    """End the connection without a response: ``"reset"`` (a TCP RST), ``"close"``
    (an orderly close), or ``"hang"`` (keep it open, answer nothing, until the
    client leaves or the request times out)."""

    kind: str

    def to_json(self) -> dict[str, Any]:
        return {self.kind: True}


@attrs.frozen
class DripAction:
    """Run the route, then send its body a byte at a time over ``drip_ms``."""

    drip_ms: int
    kind: ClassVar[str] = "drip"

    def to_json(self) -> dict[str, Any]:
        return {"drip_ms": self.drip_ms}


@attrs.frozen
class TruncateAction:
    """Run the route, promise its whole body in ``Content-Length``, send half of it
    and close the connection."""

    kind: ClassVar[str] = "truncate"

    def to_json(self) -> dict[str, Any]:
        return {"truncate": True}


@attrs.frozen
class CommitThenFailAction:
    """Run the route (its side effect happens), then answer ``status`` instead."""

    status: int
    kind: ClassVar[str] = "commit_then_fail"

    def to_json(self) -> dict[str, Any]:
        return {"commit_then_fail": self.status}


Action = (
    StatusAction
    | DelayAction
    | ConnectionAction
    | DripAction
    | TruncateAction
    | CommitThenFailAction
)
"""What a rule does; each action's ``kind`` names it in the metrics
(``status``, ``delay``, ``reset``, ``close``, ``hang``, ``drip``, ``truncate``,
``commit_then_fail``)."""


def new_seed() -> int:
    """A seed for a rule that was given none (shown with the rule, to repeat a run)."""
    return secrets.randbits(32)


@attrs.define(eq=False)
class FaultRule:
    """One rule and its budget; `decide` is asked once per matching request.

    ``times`` (None: unlimited) is used up one per firing; ``duration_seconds``
    (None: forever) ends the rule that long after it was created; with
    ``probability`` below 1 the rule's own generator, seeded with ``seed``, decides
    each time, so the same requests in the same order fire the same way. A rule
    that declines by chance lets the next matching rule decide.
    """

    id: str
    match: Match
    action: Action
    times: int | None = None
    duration_seconds: float | None = None
    probability: float = 1.0
    seed: int = attrs.field(factory=new_seed)
    pinned: bool = False
    """Kept in its plan when spent, to be re-armed (the ``/fail`` modes)."""
    order: int = 0
    """Position among the plan's rules; lower is checked first. Set by the plan."""
    remaining: int | None = attrs.field(init=False)
    expires_at: float = attrs.field(init=False)
    rng: random.Random = attrs.field(init=False)
    matched: int = attrs.field(init=False, default=0)
    """Requests that matched, fired or not."""
    fired: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.rearm(self.times, self.duration_seconds)

    def rearm(self, times: int | None, duration_seconds: float | None) -> None:
        """Give the rule a new budget, counted from now."""
        self.times = self.remaining = times
        self.duration_seconds = duration_seconds
        if duration_seconds is None:
            self.expires_at = math.inf  # no clock read: rules are made outside runs too
        else:
            self.expires_at = trio.current_time() + duration_seconds

    def live(self, now: float) -> bool:
        """Whether the rule can still fire."""
        return (self.remaining is None or self.remaining > 0) and now < self.expires_at

    def listed(self, now: float) -> bool:
        """Whether ``GET /faults`` shows the rule: always, or a pinned one while
        it is on."""
        return not self.pinned or self.live(now)

    def decide(self, now: float) -> bool:
        """Count a matching request; say (and count) whether the rule fires for it."""
        self.matched += 1
        if not self.live(now):
            return False
        if self.probability < 1.0 and self.rng.random() >= self.probability:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.fired += 1
        return True

    def jitter_seconds(self, jitter_ms: int) -> float:
        """A delay of 0 to ``jitter_ms`` milliseconds, from the rule's generator."""
        return self.rng.uniform(0, jitter_ms) / 1000 if jitter_ms else 0.0

    def to_json(self, now: float) -> dict[str, Any]:
        """The rule as ``GET /faults`` serves it."""
        methods = self.match.methods
        return {
            "id": self.id,
            "match": {
                "method": None if methods is None else sorted(methods),
                "path": self.match.path,
                "scope": self.match.scope,
                "headers": {
                    name.decode("latin-1"): value.decode("latin-1")
                    for name, value in self.match.headers
                },
            },
            "action": self.action.to_json(),
            "times": self.times,
            "duration_seconds": self.duration_seconds,
            "probability": self.probability,
            "seed": self.seed,
            "remaining": self.remaining,
            "remaining_seconds": (
                None
                if self.duration_seconds is None
                else max(0.0, self.expires_at - now)
            ),
            "matched": self.matched,
            "fired": self.fired,
            "live": self.live(now),
        }


class TooManyRules(Exception):
    """The plan holds ``max_rules`` live rules already."""


def _order(rule: FaultRule) -> int:
    return rule.order


def first_segment(path: str) -> str:
    """``/api/v1/items`` -> ``api``."""
    end = path.find("/", 1)
    return path[1:] if end == -1 else path[1:end]


@attrs.define(eq=False)
class _Bucket:
    """The indexed rules of one scope, each list oldest first: by exact path, globs
    by the first path segment they spell out, and the rest (no path, or a glob
    such as ``/*`` or ``/ms?`` that could match any first segment)."""

    exact: dict[str, list[FaultRule]] = attrs.field(factory=dict)
    globs: dict[str, list[FaultRule]] = attrs.field(factory=dict)
    wide: list[FaultRule] = attrs.field(factory=list)

    def lists(self, path: str) -> Iterator[list[FaultRule]]:
        """The lists whose rules may match ``path``."""
        found = self.exact.get(path)
        if found:
            yield found
        if self.globs and (found := self.globs.get(first_segment(path))):
            yield found
        if self.wide:
            yield self.wide

    def _place(self, rule: FaultRule) -> tuple[dict[str, list[FaultRule]] | None, str]:
        match = rule.match
        if (path := match.exact_path) is not None:
            return self.exact, path
        if (segment := match.segment) is not None:
            return self.globs, segment
        return None, ""

    def add(self, rule: FaultRule) -> None:
        table, key = self._place(rule)
        target = self.wide if table is None else table.setdefault(key, [])
        target.append(rule)
        target.sort(key=_order)

    def discard(self, rule: FaultRule) -> bool:
        """Take ``rule`` out; False if it was not here."""
        table, key = self._place(rule)
        target = self.wide if table is None else table.get(key, [])
        if rule not in target:
            return False
        target.remove(rule)
        if table is not None and not target:
            del table[key]
        return True

    def __bool__(self) -> bool:
        return bool(self.exact or self.globs or self.wide)


class FaultPlan(RunBound):
    """The rules of one server, oldest first, and the index that finds them.

    At most ``max_rules`` rules are kept: adding one to a full plan first forgets
    the oldest spent or expired rules, and raises `TooManyRules` if every rule is
    still live. Pinned rules (`FailureInjector`'s) are always checked first and do
    not count.

    Rule deadlines are trio times, so the plan belongs to one `trio.run`: used in
    another (an app served twice), it starts empty, pinned rules switched off.
    """

    def __init__(self, max_rules: int) -> None:
        self._run = None
        self.max_rules = max_rules
        self._rules: dict[str, FaultRule] = {}
        self._index: dict[str | None, _Bucket] = {}
        """Rules that can fire, by scope; a bucket goes when its last rule does."""
        self._unpinned = 0
        self._next_order = 0
        self._next_pinned_order = -1_000_000

    def __len__(self) -> int:
        """How many rules are stored, pinned ones aside."""
        return self._unpinned

    def _start_run(self) -> None:
        self.clear()

    def _bind(self) -> None:
        """A plan first used in a new run starts over (reads no clock)."""
        if current_run() is not self._run:
            self._enter_run()

    def now(self) -> float:
        """The plan's clock, trio time."""
        self._bind()
        return trio.current_time()

    def add(self, rule: FaultRule) -> FaultRule:
        """Store and index ``rule`` as the newest one (pinned: before all others)."""
        self._bind()
        if rule.id in self._rules:
            raise ValueError(f"a fault rule with id {rule.id!r} exists already")
        if rule.pinned:
            rule.order = self._next_pinned_order
            self._next_pinned_order += 1
        else:
            self._make_room(trio.current_time())
            rule.order = self._next_order
            self._next_order += 1
            self._unpinned += 1
        self._rules[rule.id] = rule
        self._reindex(rule)
        return rule

    def _make_room(self, now: float) -> None:
        if len(self) < self.max_rules:
            return
        for rule in [r for r in self._rules.values() if not r.pinned]:
            if not rule.live(now):
                self._forget(rule)
                if len(self) < self.max_rules:
                    return
        raise TooManyRules(
            f"at most {self.max_rules} fault rules can be live at once; "
            "delete some first (DELETE /faults)"
        )

    def get(self, rule_id: str) -> FaultRule | None:
        return self._rules.get(rule_id)

    def rules(self, scope: str | None = None) -> list[FaultRule]:
        """Every stored rule, oldest first (pinned ones only while live), or only
        those of ``scope``."""
        now = self.now()
        return [
            rule
            for rule in sorted(self._rules.values(), key=_order)
            if rule.listed(now) and (scope is None or rule.match.scope == scope)
        ]

    def remove(self, rule_id: str) -> bool:
        """Delete a rule (a pinned one is switched off instead); False if unknown."""
        rule = self._rules.get(rule_id)
        if rule is None:
            return False
        self._forget(rule)
        return True

    def clear(self, scope: str | None = None) -> None:
        """Delete every rule, or only those whose match names ``scope``."""
        for rule in list(self._rules.values()):
            if scope is None or rule.match.scope == scope:
                self._forget(rule)

    def _forget(self, rule: FaultRule) -> None:
        if rule.pinned:
            rule.rearm(0, None)
            return
        self._unindex(rule)
        del self._rules[rule.id]
        self._unpinned -= 1

    def _reindex(self, rule: FaultRule) -> None:
        """Put ``rule`` in the index, once (again, after a re-arm)."""
        self._unindex(rule)
        self._index.setdefault(rule.match.scope, _Bucket()).add(rule)

    def rearm(
        self, rule: FaultRule, times: int | None, duration_seconds: float | None
    ) -> None:
        """Re-arm a stored rule with a new budget (see `FaultRule.rearm`)."""
        self._bind()
        rule.rearm(times, duration_seconds)
        self._reindex(rule)

    def _unindex(self, rule: FaultRule) -> None:
        bucket = self._index.get(rule.match.scope)
        if bucket is not None and bucket.discard(rule) and not bucket:
            del self._index[rule.match.scope]

    def check(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> FaultRule | None:
        """The rule that fires for this request, if any (its budget is used).

        The request's scope is its ``X-Fault-Scope`` header, looked up only when
        some rule has a scope.
        """
        if not self._index:
            return None
        self._bind()
        lists = self._lists(path, headers)
        if not lists:
            return None
        candidates: Iterable[FaultRule] = (
            lists[0] if len(lists) == 1 else heapq.merge(*lists, key=_order)
        )
        now = trio.current_time()
        spent: list[FaultRule] = []
        fired: FaultRule | None = None
        for rule in candidates:
            if rule.match.accepts(method, path, headers) and rule.decide(now):
                fired = rule
            if not rule.pinned and not rule.live(now):
                spent.append(rule)  # used up just now, or expired
            if fired is not None:
                break
        for rule in spent:
            self._unindex(rule)
        return fired

    def _lists(
        self, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> list[list[FaultRule]]:
        """The index's lists whose rules may match a request to ``path``."""
        lists: list[list[FaultRule]] = []
        unscoped = self._index.get(None)
        if unscoped is not None:
            lists.extend(unscoped.lists(path))
        if len(self._index) > (unscoped is not None):
            given = find_header(headers, SCOPE_HEADER)
            scoped = None if given is None else self._index.get(given.decode("latin-1"))
            if scoped is not None:
                lists.extend(scoped.lists(path))
        return lists

    def matching(
        self, method: str, path: str, headers: Sequence[tuple[bytes, bytes]]
    ) -> list[FaultRule]:
        """The indexed rules whose match accepts this request, in order, without
        deciding or counting anything (for a backend that decides elsewhere)."""
        if not self._index:
            return []
        self._bind()
        lists = self._lists(path, headers)
        if not lists:
            return []
        candidates: Iterable[FaultRule] = (
            lists[0] if len(lists) == 1 else heapq.merge(*lists, key=_order)
        )
        return [r for r in candidates if r.match.accepts(method, path, headers)]

    def retire(self, rule: FaultRule) -> None:
        """Take ``rule`` out of the index (it stays stored): it cannot fire again."""
        self._unindex(rule)
