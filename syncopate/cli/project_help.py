"""`project add` and `project set`: the git URL help, and the MB options whose 0 means none."""

from __future__ import annotations

from typing import Any

import typer

# Exactly what validate.check_git_url lets through.
GIT_URL_HELP = (
    "Git URL: https://, http://, ssh://, git://, file://, user@host:path, or an absolute "
    "path (/srv/git/app) that every node can read."
)


def megabytes(help: str, zero: str) -> Any:
    """An MB option of `project add` whose default 0 means `zero` (`no limit`): the help says
    that in words instead of `[default: 0.0]`."""
    return typer.Option(
        0.0, min=0, metavar="MB", show_default=False, help=f"{help} (default: {zero})."
    )
