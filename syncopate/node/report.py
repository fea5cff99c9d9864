"""What the node says of one project: the body of its /node-update report.

    body = report.build(local, checkout, started=True)

The report carries the project's status, resources, variables and the log lines the manager
has not acknowledged yet, kept under the manager's body limit (`within_budget`). The variables
are read from the checkout only once the project started under its current epoch: before that
the file, if any, is an older epoch's, and reporting it would undo a reset or a move.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from syncopate import variables
from syncopate.node import probes
from syncopate.node.project import Local
from syncopate.states import ProjectStatus

LOG_TAIL_LINES = 20
LOG_LINES_PER_REPORT = 200
# Of JSON text. The manager takes bodies up to 1 MiB, and a line of 500 emoji is 6 KB of JSON.
LOG_BYTES_PER_REPORT = 256 * 1024
WORST_JSON_BYTES_PER_CHAR = 12  # a character outside the BMP: two \uXXXX escapes


def build(local: Local, checkout: Path, started: bool) -> dict[str, Any]:
    """The /node-update body for one project (without name and token).

    `started`: whether the project started under `local.epoch` (its variables file is ours).
    """
    read_variables(local, checkout, started)
    process = local.process
    reasons = [r for r in (local.reason, local.variables_error) if r]
    if local.status is not ProjectStatus.PENDING:
        # A project that dies of a full disk says so in its own output only; say it here.
        full = probes.full_disk_reason(checkout)
        if full:
            reasons.append(full)
    if local.sink is not None and local.sink.last_error is not None:
        reasons.append(f"output not written to {local.sink.path}: {local.sink.last_error}")
    report: dict[str, Any] = {
        "project-name": local.name,
        "project-url": local.url,
        "status": local.status.value,
        "disk-usage": round(local.disk_mb, 3),
        "ram-usage": round(process.ram_mb(), 3) if process is not None else 0.0,
        "persistent-variables": local.variables,
        "epoch": local.epoch,
        "commit": local.commit,
        "restarts": process.restarts if process is not None else 0,
        "reason": "; ".join(reasons) or None,
    }
    if process is not None:
        report["pid"] = process.pid if process.status != "stopped" else None
        report["exit-code"] = process.exit_code
    if local.sink is not None:
        report["log-tail"] = local.sink.tail(LOG_TAIL_LINES)
        chunk = local.sink.since(local.log_next, LOG_LINES_PER_REPORT)
        report["log-stream"] = local.sink.stream
        report["log-seq"] = chunk.seq
        report["log-lines"] = within_budget(chunk.lines, LOG_BYTES_PER_REPORT)
        report["log-times"] = [round(t, 3) for t in chunk.times[: len(report["log-lines"])]]
    return report


def read_variables(local: Local, checkout: Path, started: bool) -> None:
    """Refresh `local.variables` (and `variables_error`) from the checkout's file."""
    if not started:
        # Not started under this epoch yet (cloning, or its start failed): the file, if
        # any, is an older epoch's, and reporting it would undo a reset or a move.
        local.variables = dict(local.manager_variables)
        return
    path = checkout / variables.FILE_NAME
    if not path.exists() and local.status in ("cloning", "pending", "failed"):
        return
    try:
        local.variables = variables.load(path)
        local.variables_error = ""
    except variables.VariablesError as exc:
        local.variables_error = f"project.variables: {exc}; reporting the last good copy"
    except OSError as exc:
        local.variables_error = f"project.variables unreadable: {exc}"


def within_budget(lines: list[str], budget: int) -> list[str]:
    """The first of `lines` whose JSON text fits in `budget` bytes (always at least one)."""
    if sum(len(line) for line in lines) * WORST_JSON_BYTES_PER_CHAR <= budget:
        return lines  # the usual case, without encoding anything
    used = 0
    for count, line in enumerate(lines):
        used += len(json.dumps(line)) + 2
        if used > budget:
            return lines[: max(count, 1)]
    return lines
