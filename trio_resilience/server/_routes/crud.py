"""In-memory CRUD demo resources (/api/v1/items, /api/v1/users).

POST is idempotent by ``X-Request-ID``: a repeated id returns the resource the first
request created, so client retries of writes can be tested end to end.
"""

from __future__ import annotations

from pydantic import BaseModel, EmailStr, Field
from quart import Blueprint, Response, request
from quart_schema import document_request, document_response, tag

from .._resources import ResourceStore
from .._responses import (
    ErrorDetail,
    ValidationErrorDetail,
    json_response,
    parse_json_body,
    request_id_problem,
)
from .._state import server_state


class ItemIn(BaseModel, extra="forbid"):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(None, max_length=2000)
    price: float = Field(ge=0, allow_inf_nan=False)
    quantity: int = Field(0, ge=0)


class UserIn(BaseModel, extra="forbid"):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr


def crud_blueprint(name: str, model: type[BaseModel]) -> Blueprint:
    """Create, read, list, update and delete for one in-memory collection."""
    blueprint = Blueprint(name, __name__, url_prefix=f"/api/v1/{name}")

    def store() -> ResourceStore:
        return server_state().resources[name]

    def not_found() -> Response:
        return json_response({"detail": f"{name[:-1].capitalize()} not found"}, 404)

    @blueprint.post("")
    @tag([name])
    @document_request(model)
    @document_response(ErrorDetail, 400)
    @document_response(ValidationErrorDetail, 422)
    async def create() -> Response:
        body = await parse_json_body(model)
        if isinstance(body, Response):
            return body
        records = store()
        key = request.headers.get("X-Request-ID")
        if (problem := request_id_problem(key)) is not None:
            return problem
        if key is not None:
            existing = records.keys.get(key)
            if existing is not None and existing in records.records:
                record = records.records[existing]
                headers = {
                    "Location": f"/api/v1/{name}/{existing}",
                    "Idempotent-Replayed": "true",
                }
                return json_response(record, 201, headers)
        record = records.create(body.model_dump())
        if key is not None:
            records.keys.set(key, record["id"])
        return json_response(
            record, 201, {"Location": f"/api/v1/{name}/{record['id']}"}
        )

    @blueprint.get("")
    @tag([name])
    async def list_all() -> Response:
        return json_response({name: list(store().records.values())})

    @blueprint.get("/<int:record_id>")
    @tag([name])
    @document_response(ErrorDetail, 404)
    async def read(record_id: int) -> Response:
        record = store().records.get(record_id)
        return not_found() if record is None else json_response(record)

    @blueprint.put("/<int:record_id>")
    @tag([name])
    @document_request(model)
    @document_response(ErrorDetail, 404)
    @document_response(ValidationErrorDetail, 422)
    async def update(record_id: int) -> Response:
        records = store().records
        if record_id not in records:
            return not_found()
        body = await parse_json_body(model)
        if isinstance(body, Response):
            return body
        records[record_id] = {"id": record_id, **body.model_dump()}
        return json_response(records[record_id])

    @blueprint.delete("/<int:record_id>")
    @tag([name])
    @document_response(ErrorDetail, 404)
    async def delete(record_id: int) -> Response:
        if store().records.pop(record_id, None) is None:
            return not_found()
        return Response("", status=204)

    return blueprint


items = crud_blueprint("items", ItemIn)
users = crud_blueprint("users", UserIn)
