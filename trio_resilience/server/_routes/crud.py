"""CRUD demo resources (/api/v1/items, /api/v1/users), in memory or in Redis.

Each collection holds at most ``crud_max_items`` records (a POST beyond is a 507)
and lists a page at a time, in id order. POST is idempotent by ``X-Request-ID``: a
repeated id with the same body returns the record the first request created, as it
is now, for as long as it exists (not for as long as an answer cache remembers
it), so client retries of writes can be tested end to end. The same id with a
different body is a 422; once the record is deleted, the id answers 410 for
``crud_key_retention`` seconds (a late retry never recreates a deleted record),
after which it is free again. With a state URL the collections live in Redis
(`RedisResourceStore`), and these rules hold across every worker process.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from quart import Blueprint, Response, request
from quart_schema import (
    document_querystring,
    document_request,
    document_response,
    tag,
)

from .._email import EmailAddress
from .._idempotency import fingerprint
from .._openapi import (
    document_empty_response,
    document_parameter,
    document_response_header,
)
from .._pagination import PageQuery, page_body
from .._resources import (
    KeyGoneError,
    KeyReusedError,
    ResourceBackend,
    StoreFullError,
)
from .._responses import (
    REQUEST_ID_SCHEMA,
    ErrorDetail,
    ValidationErrorDetail,
    json_response,
    mark_replayed,
    parse_json_body,
    parse_query,
    request_id_problem,
)
from .._state import server_state


class ItemIn(BaseModel, extra="forbid"):
    """An item as a client sends it."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    price: float = Field(ge=0, allow_inf_nan=False, strict=True)
    quantity: int = Field(0, ge=0, strict=True)


class Item(ItemIn):
    """An item as stored, with its id."""

    id: int = Field(ge=1)


class ItemPage(BaseModel):
    """One page of items in id order; ``next`` is the next page's URL, or null."""

    items: list[Item]
    next: str | None


class UserIn(BaseModel, extra="forbid"):
    """A user as a client sends it."""

    name: str = Field(min_length=1, max_length=200)
    email: EmailAddress


class User(UserIn):
    """A user as stored, with its id."""

    id: int = Field(ge=1)


class UserPage(BaseModel):
    """One page of users in id order; ``next`` is the next page's URL, or null."""

    users: list[User]
    next: str | None


_RECORD_ID_SCHEMA = {"type": "integer", "minimum": 0}


def crud_blueprint(
    name: str,
    model: type[BaseModel],
    stored: type[BaseModel],
    page: type[BaseModel],
) -> Blueprint:
    """Create, read, list, update and delete for one collection (a
    `ResourceBackend`: in memory, or in Redis).

    ``model`` validates request bodies; ``stored`` (a record) and ``page`` (a list
    response) only document the responses.
    """
    blueprint = Blueprint(name, __name__, url_prefix=f"/api/v1/{name}")
    singular = name[:-1]

    def store() -> ResourceBackend:
        return server_state().resources[name]

    def not_found() -> Response:
        return json_response({"detail": f"{singular.capitalize()} not found"}, 404)

    def location(record_id: int) -> str:
        return f"/api/v1/{name}/{record_id}"

    record_id_parameter = document_parameter(
        "path",
        "record_id",
        schema=_RECORD_ID_SCHEMA,
        description=f"The {singular}'s id.",
    )

    @blueprint.post("")
    @tag([name])
    @document_request(model)
    @document_parameter(
        "header",
        "X-Request-ID",
        schema=REQUEST_ID_SCHEMA,
        description=(
            f"Idempotency key: the same key with the same body returns the {singular} "
            f"it created (`Idempotent-Replayed: true`) for as long as that {singular} "
            "exists; with a different body it is a 422; after a DELETE it is a 410 "
            "for `crud_key_retention` seconds."
        ),
    )
    @document_response(stored, 201)
    @document_response_header(201, "Location", description=f"The {singular}'s URL.")
    @document_response_header(
        201,
        "Idempotent-Replayed",
        description="`true` when the X-Request-ID replayed an earlier create.",
        schema={"type": "string", "enum": ["true"]},
    )
    @document_response(ErrorDetail, 400)
    @document_response(ErrorDetail, 410)
    @document_response(ErrorDetail, 413)
    @document_response(ErrorDetail, 415)
    @document_response(ValidationErrorDetail, 422)
    @document_response(ErrorDetail, 507)
    async def create() -> Response:
        """Create a record; 201 with it and its ``Location``.

        An ``X-Request-ID`` makes the create idempotent: the same id with the same
        body (compared after validation, so key order and spelled-out defaults do
        not matter) returns the record it created, as it is now, with
        ``Idempotent-Replayed: true``, for as long as that record exists, whatever
        else is created meanwhile. The same id with a different body is a 422.
        Once the record is deleted the id answers 410 for ``crud_key_retention``
        seconds, then it is free again. 400: a blank or too long
        ``X-Request-ID``; 507: the collection holds ``crud_max_items`` records
        (replays still answer).
        """
        body = await parse_json_body(model)
        if isinstance(body, Response):
            return body
        key = request.headers.get("X-Request-ID")
        if (problem := request_id_problem(key)) is not None:
            return problem
        data = body.model_dump(mode="json")
        try:
            created = await store().create(
                data,
                key=key,
                fingerprint=None if key is None else fingerprint(data),
            )
        except KeyReusedError as error:
            reason = (
                f"Idempotency key reused with a different request body: "
                f"X-Request-ID {error.key!r} created {singular} {error.record_id} "
                f"from another body (use a new key for a new {singular})"
            )
            detail = [
                {"loc": ["header", "X-Request-ID"], "msg": reason, "type": "key_reused"}
            ]
            return json_response({"detail": detail}, 422)
        except KeyGoneError as error:
            reason = (
                f"The {singular} X-Request-ID {error.key!r} created "
                f"({error.record_id}) has been deleted; use a new key to create "
                f"another"
            )
            return json_response({"detail": reason}, 410)
        except StoreFullError as error:
            reason = (
                f"The {name} collection is full ({error.max_items} {name}, "
                f"crud_max_items): delete some first"
            )
            return json_response({"detail": reason}, 507)
        record = created.record
        headers = {"Location": location(record["id"])}
        if created.replayed:
            mark_replayed(headers)
        return json_response(record, 201, headers)

    @blueprint.get("")
    @tag([name])
    @document_querystring(PageQuery)
    @document_response(page, 200)
    @document_response(ValidationErrorDetail, 422)
    async def list_all() -> Response:
        """Records in id order, a page at a time.

        At most ``limit`` records (default 100, at most 1000); ``next`` is the URL
        of the next page (it carries an ``after`` cursor, the last id served), null
        on the last page. A page costs the same whatever the collection's size.
        """
        query = parse_query(PageQuery)
        if isinstance(query, Response):
            return query
        found = await store().page(
            after=None if query.after is None else int(query.after),
            limit=query.limit,
        )
        cursor = None if found.next_after is None else str(found.next_after)
        return json_response(page_body(name, found.records, query, cursor))

    @blueprint.get("/<int:record_id>")
    @tag([name])
    @record_id_parameter
    @document_response(stored, 200)
    @document_response(ErrorDetail, 404)
    async def read(record_id: int) -> Response:
        """One record by id."""
        record = await store().get(record_id)
        return not_found() if record is None else json_response(record)

    @blueprint.put("/<int:record_id>")
    @tag([name])
    @record_id_parameter
    @document_request(model)
    @document_response(stored, 200)
    @document_response(ErrorDetail, 404)
    @document_response(ErrorDetail, 413)
    @document_response(ErrorDetail, 415)
    @document_response(ValidationErrorDetail, 422)
    async def update(record_id: int) -> Response:
        """Replace a record's fields; its id and X-Request-ID stay.

        A replay of the create that made it returns the record as it is now. The
        id is looked up before the body is read: an unknown id is a 404 whatever
        the body.
        """
        records = store()
        if await records.get(record_id) is None:
            return not_found()
        body = await parse_json_body(model)
        if isinstance(body, Response):
            return body
        record = await records.replace(record_id, body.model_dump(mode="json"))
        return not_found() if record is None else json_response(record)

    @blueprint.delete("/<int:record_id>")
    @tag([name])
    @record_id_parameter
    @document_empty_response(
        204, description=f"The {singular} is deleted (no body, no Content-Type)."
    )
    @document_response(ErrorDetail, 404)
    async def delete(record_id: int) -> Response:
        """Delete a record; 204, no body.

        The X-Request-ID that created it then answers 410 for
        ``crud_key_retention`` seconds.
        """
        if not await store().delete(record_id):
            return not_found()
        return Response("", status=204)

    return blueprint


items = crud_blueprint("items", ItemIn, Item, ItemPage)
users = crud_blueprint("users", UserIn, User, UserPage)
