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
    """Compact JSON as UTF-8 bytes, in a bytes object of its own size.

    orjson's own bytes keep the buffer it wrote into, 4 KiB at the least (measured with
    tracemalloc: 4,098 bytes for a 356-byte answer). aiohttp keeps a connection's last answer
    until its next request is answered, which for a node's long poll is the whole hold: under
    5,000 agents tracemalloc found 25.8 MiB in 5,019 such buffers (issue 18). The copy costs
    ~0.13 µs for an answer of that size.
    """
    return memoryview(_dumps(value)).tobytes()


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError: a big integer, a non-string key
        return json.dumps(value, separators=(",", ":")).encode()


def dumps_text(value: Any) -> str:
    """Compact JSON as text (what a database row holds)."""
    return _dumps(value).decode()


def loads_fast(text: str | bytes) -> tuple[bool, Any]:
    """(True, value) when orjson parses `text`; (False, None) when the caller must try the
    standard library (which gives the value, or the error to report)."""
    try:
        return True, orjson.loads(text)
    except orjson.JSONDecodeError:
        return False, None
