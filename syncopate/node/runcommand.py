"""Which command runs a project: the assignment's, else syncopate.toml's, else run.sh."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path


class NoRunCommand(Exception):
    """The project has no run command; the message says where one can go."""


def resolve(checkout: Path, assigned: str | None) -> str:
    """The shell command to run in `checkout`; raise NoRunCommand when there is none."""
    if assigned:
        return assigned
    config = checkout / "syncopate.toml"
    if config.is_file():
        try:
            data = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise NoRunCommand(f"syncopate.toml is not valid TOML: {exc}") from None
        run = data.get("run")
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
