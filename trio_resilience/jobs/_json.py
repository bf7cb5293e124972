"""The size of job data as strict JSON: what the queue counts to bound its memory."""

from __future__ import annotations

import json
from typing import Any

# One encoder for every call: json.dumps with options builds a new one each time.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str)


def json_size(value: Any, what: str) -> int:
    """The bytes of ``value`` as compact, strict JSON (as the HTTP API serves it).

    Objects JSON has no type for are counted by their ``str()``, as they are served.
    A value that strict JSON cannot hold (NaN, Infinity, a reference cycle, an
    integer too long to print) raises `ValueError` naming ``what``.
    """
    if value is None:
        return 4
    if not value and type(value) in (dict, list):
        return 2
    try:
        text = _ENCODER.encode(value)
    except Exception as exc:  # a value's own str() may raise anything
        raise ValueError(f"{what} is not valid JSON: {_reason(exc)}") from exc
    return len(text)  # ASCII only (ensure_ascii), so characters are bytes


def _reason(exc: Exception) -> str:
    try:
        return str(exc) or type(exc).__name__
    except Exception:
        return type(exc).__name__
