"""The fault rules over HTTP: POST, GET and DELETE /faults.

A rule makes matching requests to any route (the job and CRUD APIs included) fail
in one way; see `_fault_schema` for its JSON form and `_fault_layer` for what each
action does on the wire. The ``/fail`` modes show up here as the rules
``fail-count`` and ``fail-duration`` while they are on (in memory; with a state
URL they stay in `RedisFailureInjector`, and deleting those ids switches them off).

With a state URL the rules are global (`_redis_plan`): budgets and counts hold
across every worker; a new rule reaches the other workers within a few ms.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, JsonValue
from quart import Blueprint, Response
from quart_schema import document_querystring, document_request, document_response, tag

from .._fault_rules import TooManyRules
from .._fault_schema import FaultRuleIn
from .._openapi import document_empty_response
from .._responses import (
    ErrorDetail,
    ScopeQuery,
    ValidationErrorDetail,
    json_response,
    parse_json_body,
    parse_query,
)
from .._state import server_state

blueprint = Blueprint("faults", __name__, url_prefix="/faults")


class MatchView(BaseModel):
    method: list[str] | None = Field(description="The methods matched; null: any.")
    path: str | None = Field(description="Exact path or glob; null: any.")
    scope: str | None = Field(description="The X-Fault-Scope matched; null: any.")
    headers: dict[str, str]


class FaultRuleView(BaseModel):
    """A rule as stored, with what is left of its budget."""

    id: str
    match: MatchView
    action: dict[str, JsonValue] = Field(description="One action, all its fields.")
    times: int | None
    duration_seconds: float | None
    probability: float
    seed: int = Field(description="The seed of the rule's generator.")
    remaining: int | None = Field(description="Firings left; null: no limit.")
    remaining_seconds: float | None = Field(
        description="Seconds left; null: no duration."
    )
    matched: int = Field(description="Requests that matched, fired or not.")
    fired: int = Field(description="Requests the rule made fail.")
    live: bool = Field(description="Whether the rule can still fire.")


class FaultRulesView(BaseModel):
    rules: list[FaultRuleView] = Field(description="Oldest first.")


class TooManyRulesDetail(ErrorDetail):
    """SERVER_MAX_FAULT_RULES live rules exist already."""


class UnknownRule(ErrorDetail):
    """No rule has this id."""


def _unknown(rule_id: str) -> Response:
    return json_response({"detail": f"No fault rule {rule_id!r}"}, 404)


@blueprint.post("")
@tag(["faults"])
@document_request(FaultRuleIn)
@document_response(FaultRuleView, 201)
@document_response(TooManyRulesDetail, 409)
@document_response(ValidationErrorDetail, 422)
async def add_rule() -> Response:
    """Add a rule: matching requests fail as its action says.

    The oldest live matching rule fires first. 409: ``SERVER_MAX_FAULT_RULES``
    live rules exist (spent and expired ones are forgotten to make room first).
    """
    given = await parse_json_body(FaultRuleIn)
    if isinstance(given, Response):
        return given
    try:
        view = await server_state().rules.add(given.to_rule())
    except TooManyRules as error:
        return json_response({"detail": str(error)}, 409)
    return json_response(view, 201)


@blueprint.get("")
@tag(["faults"])
@document_querystring(ScopeQuery)
@document_response(FaultRulesView, 200)
@document_response(ValidationErrorDetail, 422)
async def list_rules() -> Response:
    """Every rule, oldest first, spent ones included (or only ``scope``'s)."""
    query = parse_query(ScopeQuery)
    if isinstance(query, Response):
        return query
    return json_response({"rules": await server_state().rules.list(query.scope)})


@blueprint.delete("")
@tag(["faults"])
@document_querystring(ScopeQuery)
@document_empty_response(204, description="The rules (or the scope's) are gone.")
@document_response(ValidationErrorDetail, 422)
async def clear_rules() -> Response:
    """Delete every rule (the ``/fail`` modes are switched off), or only those
    whose match names ``scope``."""
    query = parse_query(ScopeQuery)
    if isinstance(query, Response):
        return query
    state = server_state()
    await state.rules.clear(query.scope)
    if query.scope is None:
        await state.faults.reset()  # where the modes live outside the plan
    return Response("", status=204)


@blueprint.get("/<rule_id>")
@tag(["faults"])
@document_response(FaultRuleView, 200)
@document_response(UnknownRule, 404)
async def get_rule(rule_id: str) -> Response:
    """One rule, with what is left of its budget."""
    view = await server_state().rules.get(rule_id)
    if view is None:
        return _unknown(rule_id)
    return json_response(view)


@blueprint.delete("/<rule_id>")
@tag(["faults"])
@document_empty_response(204, description="The rule is gone.")
@document_response(UnknownRule, 404)
async def delete_rule(rule_id: str) -> Response:
    """Delete one rule (a ``/fail`` mode's rule is switched off)."""
    if not await server_state().rules.remove(rule_id):
        return _unknown(rule_id)
    return Response("", status=204)
