"""GET /msg: a fresh UUID, with delays, injected failures and idempotency."""

from __future__ import annotations

import uuid

import trio
from pydantic import BaseModel, Field
from quart import Blueprint, request
from quart_schema import tag, validate_querystring, validate_response

from ..state import server_state
from ._common import ErrorDetail

MAX_DELAY_MS = 30_000
MAX_REQUEST_ID_LENGTH = 256

blueprint = Blueprint("messages", __name__)


class MessageQuery(BaseModel):
    delay: int = Field(
        0, ge=0, le=MAX_DELAY_MS, description="Milliseconds to wait before answering."
    )


class Message(BaseModel):
    message_id: str = Field(description="A new UUID, or the one cached for the id.")


@blueprint.get("/msg")
@tag(["messages"])
@validate_querystring(MessageQuery)
@validate_response(Message, 200)
@validate_response(ErrorDetail, 400)
@validate_response(ErrorDetail, 500)
async def get_message(
    query_args: MessageQuery,
) -> Message | tuple[Message, int, dict[str, str]] | tuple[ErrorDetail, int]:
    """A new message id after an optional delay.

    Processing order: injected failure (wins over a cached answer), then the
    idempotency cache for ``X-Request-ID`` (concurrent duplicates share one
    answer, replays carry ``Idempotent-Replayed: true``), then the delay.
    """
    request_id = request.headers.get("X-Request-ID")
    if request_id is not None:
        if not request_id.strip():
            return ErrorDetail(detail="X-Request-ID must not be empty"), 400
        if len(request_id) > MAX_REQUEST_ID_LENGTH:
            reason = f"X-Request-ID must be at most {MAX_REQUEST_ID_LENGTH} characters"
            return ErrorDetail(detail=reason), 400
    state = server_state()
    if state.faults.should_fail():
        return ErrorDetail(detail="Induced server failure"), 500
    delay = query_args.delay / 1000

    async def new_message() -> str:
        await trio.sleep(delay)
        return str(uuid.uuid4())

    if request_id is None:
        return Message(message_id=await new_message())
    message_id, replayed = await state.messages.get_or_create(request_id, new_message)
    if replayed:
        return Message(message_id=message_id), 200, {"Idempotent-Replayed": "true"}
    return Message(message_id=message_id)
