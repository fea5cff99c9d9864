"""Parse untrusted JSON or Python-literal text into plain data, with a depth limit.

The one place the manager turns text a client sent into dicts and lists (request bodies, form
fields holding a dictionary or list, persistent variables). Whatever the text, these functions
return a value or raise LiteralError (a ValueError): never RecursionError, MemoryError or a
UnicodeError, and never a value nested so deep that storing it or answering with it would fail.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from syncopate import fast_json

# Deeper than any dictionary a project keeps, far shallower than the interpreter's stack.
MAX_DEPTH = 64


class LiteralError(ValueError):
    """The text is not JSON or a Python literal, or its value is nested too deep."""


class TooDeep(LiteralError):
    """The value is nested deeper than MAX_DEPTH."""


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON: stored, they would make the manager's answers unreadable
    # to strict clients.
    raise LiteralError(f"{name} is not a JSON number")


def check_depth(value: Any, limit: int = MAX_DEPTH) -> Any:
    """Return `value` when its lists and dicts nest at most `limit` deep; raise TooDeep otherwise.

    Iterative, so a value nested a million deep is measured without recursion.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple | set | frozenset):
            children = item
        else:
            continue
        if depth > limit:
            raise TooDeep(f"nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children)
    return value


def loads_json(text: str | bytes) -> Any:
    """Parse JSON; LiteralError naming the problem when it is not JSON or is nested too deep."""
    parsed, value = fast_json.loads_fast(text)  # orjson refuses NaN and Infinity as we do
    if not parsed:
        value = _loads_standard(text)
    opened = (
        text.count("[") + text.count("{")
        if isinstance(text, str)
        else (text.count(b"[") + text.count(b"{"))
    )
    if opened <= MAX_DEPTH:
        return value  # each level opens a bracket: counted in C, cheaper than the walk
    return check_depth(value)


def _loads_standard(text: str | bytes) -> Any:
    """What orjson refused, by the standard library: a value it takes, or the error to say."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an over-long number
        raise LiteralError(str(exc)) from None


def parse_literal(text: str) -> Any:
    """Parse a form field holding a dictionary or a list: JSON first, then a Python literal.

    Python literals are read with `ast.literal_eval`, never `eval`; tuples become lists,
    and a value JSON cannot carry (a set, bytes) is refused. LiteralError when it is neither.
    """
    stripped = text.strip()
    try:
        return loads_json(stripped)
    except TooDeep:
        raise
    except LiteralError:
        pass
    try:
        value = ast.literal_eval(stripped)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        if isinstance(exc, RecursionError | MemoryError) or "too many nested" in str(exc):
            raise TooDeep(f"nested deeper than {MAX_DEPTH} levels") from None
        raise LiteralError(f"not JSON or a Python literal ({type(exc).__name__})") from None
    check_depth(value)
    if isinstance(value, dict) and not all(isinstance(key, str) for key in value):
        raise LiteralError("dictionary key names must be strings")
    try:
        # Keep only what JSON can carry: tuples become lists; sets and bytes are refused.
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise LiteralError("the literal holds values JSON cannot carry") from None
