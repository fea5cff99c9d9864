"""`project add` and `project set`: their options' help, and the MB options whose 0 means none."""

from __future__ import annotations

from typing import Any

import typer

# Exactly what validate.check_git_url lets through.
GIT_URL_HELP = (
    "Git URL: https://, http://, ssh://, git://, file://, user@host:path, or an absolute "
    "path (/srv/git/app) that every node can read."
)

ENV_HELP = "Environment variable NAME=VALUE for the project's process (repeatable)."
SECRET_HELP = "Secret NAME=VALUE: an environment variable whose value is never shown (repeatable)."
ON_HELP = "Run only on nodes with label K=V (also K!=V, or K: has the label; repeatable)."
HEALTH_CMD_HELP = "Health check: a command that exits 0 when the project is well"
HEALTH_HTTP_HELP = "Health check: a URL that answers 2xx when the project is well"
GRACE_HELP = "Seconds a new commit must run well, else the node rolls back to the last good one."
MAX_RAM_HELP = "Restart it when its processes use more RAM than this, MB"


def megabytes(help: str, zero: str) -> Any:
    """An MB option of `project add` whose default 0 means `zero` (`no limit`): the help says
    that in words instead of `[default: 0.0]`."""
    return typer.Option(
        0.0, min=0, metavar="MB", show_default=False, help=f"{help} (default: {zero})."
    )
