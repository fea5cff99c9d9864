"""What `project add` and `project set` make of their NAME=VALUE options and --vars-file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from syncopate.errors import ConfigError


def initial_variables(var: list[str], vars_file: Path | None) -> dict[str, Any]:
    """--vars-file's object, then each --var on top of it."""
    from syncopate.variables import parse_var

    result: dict[str, Any] = {}
    if vars_file is not None:
        try:
            loaded = json.loads(vars_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read --vars-file {vars_file}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"--vars-file {vars_file} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"--vars-file {vars_file} must hold a JSON object")
        result.update(loaded)
    for item in var:
        key, value = parse_var(item)
        result[key] = value
    return result


def env_pairs(items: list[str], option: str = "--env") -> dict[str, str]:
    """`K=V` items (`--env`) as a dict; the value is the text after the first '=', as it is."""
    result: dict[str, str] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ConfigError(f"{option} {item!r} is not NAME=VALUE")
        result[key] = value
    return result
