"""Persistent variables: a small JSON object a project keeps in `project.variables`.

Projects import this module themselves::

    from syncopate import variables
    state = variables.load()          # {} when there is nothing yet
    state["count"] = state.get("count", 0) + 1
    variables.save(state)             # atomic: a reader never sees half a file

The file holds a JSON object; a Python dict literal (the seed's format) is read too, with
`ast.literal_eval`, never `eval` (syncopate.literal, which also bounds how deep it nests).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import orjson

from syncopate import literal
from syncopate.errors import ConfigError

FILE_NAME = "project.variables"
MAX_BYTES = 64 * 1024
ENV_VAR = "SYNCOPATE_VARIABLES"


class VariablesError(ValueError):
    """The variables text is not a JSON object or dict literal, or is too large."""


class VariablesTooLarge(VariablesError):
    """The variables are over the 64 KiB limit."""


def encoded_size(variables: dict[str, Any]) -> int:
    """Size in bytes of the variables as compact UTF-8 JSON, the form they travel and are
    stored in. orjson first (asked for every report a fleet sends, issue 18); what it refuses
    (an integer beyond 64 bits, a lone surrogate) is sized by the standard library as before,
    which raises UnicodeEncodeError for a lone surrogate (a value no file could hold)."""
    try:
        return len(orjson.dumps(variables))
    except TypeError:  # orjson.JSONEncodeError
        return len(json.dumps(variables, separators=(",", ":"), ensure_ascii=False).encode())


def check_size(variables: dict[str, Any]) -> None:
    """Raise VariablesError when the variables are over the 64 KiB limit."""
    size = encoded_size(variables)
    if size > MAX_BYTES:
        raise VariablesTooLarge(f"variables are {size} bytes; the limit is {MAX_BYTES} (64 KiB)")


def parse(text: str) -> dict[str, Any]:
    """Parse variables text: a JSON object, else a Python dict literal. Raise VariablesError."""
    if len(text.encode("utf-8", "surrogatepass")) > 4 * MAX_BYTES:
        raise VariablesTooLarge(f"variables text is over {4 * MAX_BYTES} bytes")
    if not text.strip():
        raise VariablesError("variables text is empty")
    try:
        value = literal.parse_literal(text)
    except literal.LiteralError as exc:
        raise VariablesError(f"not a JSON object or Python dict literal: {exc}") from None
    if not isinstance(value, dict):
        raise VariablesError(f"variables must be an object, not {type(value).__name__}")
    if not all(isinstance(key, str) for key in value):
        raise VariablesError("variable names must be strings")
    check_size(value)
    return value


def parse_var(item: str) -> tuple[str, Any]:
    """`KEY=VALUE` (`project add --var`, the TUI's add form); the value is JSON when it parses
    as JSON, else the string itself."""
    key, equals, text = item.partition("=")
    if not equals or not key.strip():
        raise ConfigError(f"--var {item!r} is not KEY=VALUE")
    try:
        value: Any = json.loads(text)
    except ValueError:
        value = text
    return key.strip(), value


def default_path() -> Path:
    """The variables file of the running project: $SYNCOPATE_VARIABLES, else ./project.variables."""
    return Path(os.environ.get(ENV_VAR) or FILE_NAME)


def load(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Read the project's variables; an absent file reads as {}."""
    target = Path(path) if path is not None else default_path()
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse(text)


def atomic_write(path: Path, text: str, mode: int | None = None) -> None:
    """Write text so that a reader sees the old file or the new one, never half of either."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(variables: dict[str, Any], path: str | os.PathLike[str] | None = None) -> None:
    """Write the variables atomically (temporary file, fsync, rename)."""
    target = Path(path) if path is not None else default_path()
    check_size(variables)
    atomic_write(target, json.dumps(variables, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
