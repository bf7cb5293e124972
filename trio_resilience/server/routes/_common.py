"""Error bodies shared by the route groups: ``{"detail": ...}`` everywhere."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError


class ErrorDetail(BaseModel):
    detail: str = Field(description="Why the request failed.")


class ValidationErrorDetail(BaseModel):
    detail: list[dict[str, Any]] = Field(
        description='One {"loc", "msg", "type"} object per invalid input.'
    )


def validation_detail(error: ValidationError, *prefix: str) -> ValidationErrorDetail:
    """pydantic errors as a 422 body, each ``loc`` starting with ``prefix``."""
    return ValidationErrorDetail(
        detail=[
            {
                "loc": [*prefix, *(str(part) for part in item["loc"])],
                "msg": item["msg"],
                "type": item["type"],
            }
            for item in error.errors(include_url=False)
        ]
    )
