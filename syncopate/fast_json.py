"""JSON on the manager's hot path: orjson, with the standard library where orjson says no.

Every report and poll is parsed once and answered once, and every written record is dumped:
the standard library took ~6 µs to parse a report and ~9 µs to dump a poll's answer, orjson
~1 µs each (issue 18). orjson refuses a few things the standard library takes (an integer
beyond 64 bits, a lone surrogate, a non-string key), so whatever it refuses goes through the
standard library as before: its answer or its error is what callers get, unchanged.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a big integer, a non-string key
        return json.dumps(value, separators=(",", ":")).encode()


def dumps_text(value: Any) -> str:
    """Compact JSON as text (what a database row holds)."""
    return dumps(value).decode()


def loads_fast(text: str | bytes) -> tuple[bool, Any]:
    """(True, value) when orjson parses `text`; (False, None) when the caller must try the
    standard library (which gives the value, or the error to report)."""
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None
