"""Cursor pagination, one shape for every list endpoint.

A list answers at most ``limit`` items (default 100, at most 1000) and, when more
follow, a ``next`` URL that carries an opaque ``after`` cursor: the key of the last
item served, a non-negative integer (CRUD ids, job sequence numbers). A cursor
keeps its meaning while items are added or removed, which an offset would not.

::

    {"items": [...], "next": "/api/v1/items?limit=100&after=100"}   # or null
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, Field
from quart import request

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class PageQuery(BaseModel, extra="forbid"):
    """The query of a list endpoint; endpoints with filters subclass it."""

    limit: int = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Items per page (1 to 1000)."
    )
    after: str | None = Field(
        None,
        min_length=1,
        max_length=20,
        pattern=r"^[0-9]+$",
        description="The cursor from the previous page's `next` URL.",
    )


def next_page_url(query: PageQuery, cursor: str | None) -> str | None:
    """The URL of the page after the one ending at ``cursor`` (None: last page).

    The request's other query parameters are kept, so filters carry over.
    """
    if cursor is None:
        return None
    params = {**request.args.to_dict(), "limit": str(query.limit), "after": cursor}
    return f"{request.path}?{urlencode(params)}"


def page_body(
    name: str, items: list[Any], query: PageQuery, cursor: str | None
) -> dict[str, Any]:
    """``{name: items, "next": url | None}``: one page, as every list serves it."""
    return {name: items, "next": next_page_url(query, cursor)}
