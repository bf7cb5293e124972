"""The OpenAPI document: quart-schema's, completed with what every route shares.

quart-schema documents each route from its decorators. What the layers around the
routes answer (the guards, the concurrency limit, the timeout) and what every
response carries is added here, in one place, from the same facts those layers act
on, so no route has to repeat it:

- every response: the ``X-Request-ID`` and ``X-Process-Time`` headers;
- every operation: 400 (a refused ``Host``, or ``Content-Length`` with
  ``Transfer-Encoding``);
- POST, PUT, PATCH: 413 (a body over ``max_body_bytes``) and 415 (a body not
  declared JSON); a documented request body is marked required;
- with a ``control_token``: 401 on every method but GET, HEAD and OPTIONS, and the
  bearer security scheme;
- every path the concurrency limit applies to (all but `CONTROL_PREFIXES`): 503
  with ``Retry-After`` (no slot in time) and 504 (``request_timeout`` ran out).

A status the route documents itself keeps its schema; the shared description is
appended to the route's. Operation ids are ``<method>_<endpoint>`` (the endpoint
has its blueprint's name), unique by construction, unless a route sets its own
with quart-schema's ``operation_id``. Routes document parameters quart-schema
cannot see (a path parameter parsed by the route, a header), extra response
headers and bodiless responses with `document_parameter`,
`document_response_header` and `document_empty_response`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any, Literal, TypeVar, cast

import attrs
from pydantic import TypeAdapter
from quart_schema import OpenAPIProvider
from werkzeug.routing.rules import Rule

from ._asgi import CONTROL_PREFIXES
from ._guards import BODY_METHODS, needs_control_token
from ._responses import ErrorDetail
from ._settings import ServerSettings
from ._state import ResilienceTestApp

F = TypeVar("F", bound=Callable[..., Any])

# quart-schema's own attribute for an operation id set with ``operation_id``.
_OPERATION_ID_ATTRIBUTE = "_quart_schema_operation_id"
_PARAMETERS_ATTRIBUTE = "_trio_resilience_parameters"
_RESPONSE_HEADERS_ATTRIBUTE = "_trio_resilience_response_headers"
_EMPTY_RESPONSES_ATTRIBUTE = "_trio_resilience_empty_responses"
CONTROL_TOKEN_SCHEME = "controlToken"

Schema = Mapping[str, Any] | TypeAdapter[Any]


def _json_schema(schema: Schema) -> dict[str, Any]:
    if isinstance(schema, TypeAdapter):
        return schema.json_schema()
    return dict(schema)


def document_parameter(
    location: Literal["path", "query", "header"],
    name: str,
    *,
    schema: Schema,
    description: str,
    required: bool = False,
) -> Callable[[F], F]:
    """Document one parameter of a route: its JSON schema and what it means.

    ``schema`` is a JSON schema or a pydantic `TypeAdapter` (the one the route
    validates with, so the document cannot drift from the check). A path parameter
    replaces the untyped one quart-schema derives from the URL rule, and is always
    required; others are added.
    """
    parameter = {
        "name": name,
        "in": location,
        "required": required or location == "path",
        "description": description,
        "schema": _json_schema(schema),
    }

    def decorate(func: F) -> F:
        given: list[dict[str, Any]] = getattr(func, _PARAMETERS_ATTRIBUTE, [])
        setattr(func, _PARAMETERS_ATTRIBUTE, [parameter, *given])
        return func

    return decorate


def document_response_header(
    status: int, name: str, *, description: str, schema: Schema | None = None
) -> Callable[[F], F]:
    """Document a header that the route's ``status`` responses carry."""
    header = {
        "description": description,
        "schema": {"type": "string"} if schema is None else _json_schema(schema),
    }

    def decorate(func: F) -> F:
        given: dict[int, dict[str, Any]] = getattr(
            func, _RESPONSE_HEADERS_ATTRIBUTE, {}
        )
        merged = {**given, status: {name: header, **given.get(status, {})}}
        setattr(func, _RESPONSE_HEADERS_ATTRIBUTE, merged)
        return func

    return decorate


def document_empty_response(status: int, *, description: str) -> Callable[[F], F]:
    """Document a response without a body (a 204, say), which quart-schema's
    ``document_response`` cannot: it needs a model."""

    def decorate(func: F) -> F:
        given: dict[int, str] = getattr(func, _EMPTY_RESPONSES_ATTRIBUTE, {})
        setattr(func, _EMPTY_RESPONSES_ATTRIBUTE, {**given, status: description})
        return func

    return decorate


_STRING = {"type": "string"}
COMMON_RESPONSE_HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {
        "description": "The request's X-Request-ID, or a new random id.",
        "schema": _STRING,
    },
    "X-Process-Time": {
        "description": "Seconds the server took until the response started.",
        "schema": _STRING,
    },
}
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
WWW_AUTHENTICATE = {
    "WWW-Authenticate": {
        "description": "The Bearer challenge.",
        "schema": _STRING,
    }
}


@attrs.frozen(kw_only=True)
class SharedResponse:
    """A response the layers around the routes may give, and where it applies."""

    status: int
    description: str
    applies: Callable[[str, str, dict[str, Any]], bool]
    """``applies(path, METHOD, operation)``: whether this operation can give it."""
    headers: Mapping[str, Any] = attrs.field(factory=dict)


def _limited(path: str, method: str, operation: dict[str, Any]) -> bool:
    return not path.startswith(CONTROL_PREFIXES)


def shared_responses(settings: ServerSettings) -> tuple[SharedResponse, ...]:
    """The responses every matching operation can give, for these settings."""
    responses = [
        SharedResponse(
            status=400,
            description=(
                "Refused before the route: a Host header that is not allowed, "
                "several Host headers, or both Content-Length and "
                "Transfer-Encoding."
            ),
            applies=lambda path, method, operation: True,
        ),
        SharedResponse(
            status=413,
            description=(
                f"The request body is larger than {settings.max_body_bytes} bytes "
                "(max_body_bytes)."
            ),
            applies=lambda path, method, operation: (
                method in BODY_METHODS or "requestBody" in operation
            ),
        ),
        SharedResponse(
            status=415,
            description="A request body not declared as application/json.",
            applies=lambda path, method, operation: method in BODY_METHODS,
        ),
        SharedResponse(
            status=503,
            description=(
                "Server is at capacity: no concurrency slot came free in time "
                "(max_concurrency, queue_timeout)."
            ),
            applies=_limited,
            headers=RETRY_AFTER,
        ),
        SharedResponse(
            status=504,
            description="request_timeout ran out before the response started.",
            applies=_limited,
        ),
    ]
    if settings.control_token is not None:
        responses.append(
            SharedResponse(
                status=401,
                description=(
                    "The control token is missing or wrong: send "
                    "Authorization: Bearer <token>."
                ),
                applies=lambda path, method, operation: needs_control_token(
                    method, path
                ),
                headers=WWW_AUTHENTICATE,
            )
        )
    return tuple(responses)


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": ErrorDetail.model_json_schema()},
        },
    }


def _add_headers(response: dict[str, Any], headers: Mapping[str, Any]) -> None:
    present = response.setdefault("headers", {})
    for name, header in headers.items():
        present.setdefault(name, header)


def complete_operation(
    operation: dict[str, Any],
    path: str,
    method: str,
    shared: tuple[SharedResponse, ...],
    *,
    control_token: bool,
) -> None:
    """Add the shared responses and headers to one operation object, in place."""
    # quart-schema keeps the blank line between a docstring's summary and the rest.
    if description := operation.get("description", "").strip():
        operation["description"] = description
    else:
        operation.pop("description", None)
    responses: dict[Any, dict[str, Any]] = operation.setdefault("responses", {})
    for rule in shared:
        if not rule.applies(path, method, operation):
            continue
        known = responses.get(rule.status)
        if known is None:
            responses[rule.status] = _error_response(rule.description)
        else:
            own = known.get("description", "")
            if rule.description not in own:
                known["description"] = f"{own} {rule.description}".strip()
        _add_headers(responses[rule.status], rule.headers)
    for status, response in responses.items():
        if not response.get("description"):
            response["description"] = HTTPStatus(int(status)).phrase
        _add_headers(response, COMMON_RESPONSE_HEADERS)
    if "requestBody" in operation:
        operation["requestBody"]["required"] = True
    if control_token and needs_control_token(method, path):
        operation["security"] = [{CONTROL_TOKEN_SCHEME: []}]
    # Range keys ("5XX", see `document_content_response`) are strings: every key
    # becomes one, so that the document's keys can be sorted.
    operation["responses"] = {str(status): r for status, r in responses.items()}


class ResilienceOpenAPIProvider(OpenAPIProvider):
    """quart-schema's provider, plus the shared responses and the decorators here."""

    def schema(self) -> dict[str, Any]:
        document = super().schema()
        settings = cast(ResilienceTestApp, self._app).settings
        control_token = settings.control_token is not None
        shared = shared_responses(settings)
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                complete_operation(
                    operation,
                    path,
                    method.upper(),
                    shared,
                    control_token=control_token,
                )
        if control_token:
            schemes = document["components"].setdefault("securitySchemes", {})
            schemes[CONTROL_TOKEN_SCHEME] = {
                "type": "http",
                "scheme": "bearer",
                "description": "The server's control_token.",
            }
        return document

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        paths, components = super().build_paths(rule)
        func = self._app.view_functions[rule.endpoint]
        parameters: list[dict[str, Any]] = getattr(func, _PARAMETERS_ATTRIBUTE, [])
        headers: dict[int, dict[str, Any]] = getattr(
            func, _RESPONSE_HEADERS_ATTRIBUTE, {}
        )
        empty: dict[int, str] = getattr(func, _EMPTY_RESPONSES_ATTRIBUTE, {})
        own_id = getattr(func, _OPERATION_ID_ATTRIBUTE, None)
        for operations in paths.values():
            for method in operations:
                # quart-schema shares one operation's parts between the methods of
                # an endpoint: each gets its own copy before anything changes.
                operation = operations[method] = copy.deepcopy(operations[method])
                if own_id is None:
                    endpoint = rule.endpoint.replace(".", "_")
                    operation["operationId"] = f"{method}_{endpoint}"
                operation["parameters"] = _merged(operation["parameters"], parameters)
                responses = operation["responses"]
                for status, description in empty.items():
                    responses.setdefault(status, {"description": description})
                for status, response in getattr(func, _CONTENT_RESPONSES, {}).items():
                    responses.setdefault(status, copy.deepcopy(response))
                for status, named in headers.items():
                    if status in responses:
                        response = responses[status]
                        response["headers"] = {**response.get("headers", {}), **named}
        return paths, components


def _merged(
    generated: list[dict[str, Any]], documented: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """quart-schema's parameters, with documented ones replacing those they name."""
    replaced = {(p["in"], p["name"]) for p in documented}
    kept = [p for p in generated if (p["in"], p["name"]) not in replaced]
    return [*kept, *copy.deepcopy(documented)]


_CONTENT_RESPONSES = "_trio_resilience_content_responses"


def document_content_response(
    status: int | str,
    *,
    description: str,
    content: Mapping[str, Schema | None],
    headers: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Document a response that quart-schema's ``document_response`` cannot.

    That is, one with media types other than JSON, or several (``content`` maps
    each to its schema; None for none, as for binary content), or a status range:
    ``"2XX"`` to ``"5XX"`` or ``"default"``, for a status the caller chooses (an
    exact status documented too takes precedence, as OpenAPI says). ``headers``
    are OpenAPI header objects by name. A status quart-schema documents for the
    route keeps quart-schema's response. Schemas are inlined: a model here must not
    nest others (their ``$defs`` would not resolve).
    """
    response: dict[str, Any] = {
        "description": description,
        "content": {
            media_type: {} if schema is None else {"schema": _json_schema(schema)}
            for media_type, schema in content.items()
        },
    }
    if headers:
        response["headers"] = {name: dict(header) for name, header in headers.items()}

    def decorate(func: F) -> F:
        given: dict[int | str, dict[str, Any]] = getattr(func, _CONTENT_RESPONSES, {})
        setattr(func, _CONTENT_RESPONSES, {**given, status: response})
        return func

    return decorate
