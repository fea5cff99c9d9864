"""Which command runs a project: the assignment's, else syncopate.toml's, else run.sh.

`read_config` is the one reader of a checkout's `syncopate.toml`: `[run]` here, `[health]` in
`health.py`.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

CONFIG_FILE = "syncopate.toml"


class NoRunCommand(Exception):
    """The project has no run command; the message says where one can go."""


class ConfigError(Exception):
    """The checkout's syncopate.toml cannot be read; the message says why."""


def read_config(checkout: Path) -> dict[str, Any]:
    """The checkout's syncopate.toml as a dict ({} when there is none); raise ConfigError."""
    config = checkout / CONFIG_FILE
    if not config.is_file():
        return {}
    try:
        return tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{CONFIG_FILE} is not valid TOML: {exc}") from None


def resolve(checkout: Path, assigned: str | None) -> str:
    """The shell command to run in `checkout`; raise NoRunCommand when there is none."""
    if assigned:
        return assigned
    try:
        run = read_config(checkout).get("run")
    except ConfigError as exc:
        raise NoRunCommand(str(exc)) from None
    command = run.get("command") if isinstance(run, dict) else None
    if isinstance(command, str) and command.strip():
        return command
    script = checkout / "run.sh"
    if script.is_file() and os.access(script, os.X_OK):
        return "./run.sh"
    raise NoRunCommand(
        "no run command: give one with --command, in syncopate.toml ([run] command = ...), "
        "or as an executable run.sh"
    )
