"""How projects, nodes and commands look: rich tables, ages, sizes, status colours.

Pure functions of the manager's answers (and the current time), so the same tables and details
serve `project list`, `node list`, the demo's live view and the TUI, and tests can check them
without a terminal. Scripts use `--json` instead, shaped by cli/output.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from syncopate.constraints import label_text
from syncopate.fit import Column, FitTable
from syncopate.metrics_text import cpu_cell, metrics_text

STATUS_STYLE = {
    "running": "bold green",
    "alive": "bold green",
    "starting": "cyan",
    "cloning": "cyan",
    "pending": "cyan",
    "stopped": "dim",
    "crashed": "bold yellow",
    "unhealthy": "bold yellow",
    "rolled-back": "yellow",
    "unschedulable": "yellow",
    "failed": "bold red",
    "lost": "bold red",
    "dead": "bold red",
    # commands
    "requested": "cyan",
    "collected": "cyan",
    "responded": "bold green",
    "analyzed": "green",
    "timed-out": "bold red",
    "canceled": "dim",
}


def parse_time(value: object) -> datetime | None:
    """A manager timestamp (`2026-11-22T10:00:00Z`) as an aware datetime; None if absent."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def ago(value: object, now: datetime | None = None) -> str:
    """`12s ago`, `3m ago`, `5h ago`, `2d ago`; `-` when unknown."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m ago"
    if seconds < 86400:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def size(megabytes: object) -> str:
    """`0 MB`, `12 MB`, `1.5 GB`, `2.0 TB`, from a figure in MB; `-` when unknown."""
    if not isinstance(megabytes, int | float) or isinstance(megabytes, bool):
        return "-"
    if megabytes < 1024:
        return f"{megabytes:.0f} MB" if megabytes >= 1 or megabytes == 0 else f"{megabytes:.1f} MB"
    if megabytes < 1024 * 1024:
        return f"{megabytes / 1024:.1f} GB"
    return f"{megabytes / 1024 / 1024:.1f} TB"


def status_text(status: object) -> Text:
    text = str(status or "-")
    return Text(text, style=STATUS_STYLE.get(text, ""))


def project_status(info: Mapping[str, Any], compact: bool = False) -> Text:
    """The status in its colour, `(stopping)` after it while a stop is under way.

    `compact` (a narrow column) shows just `stopping` then.
    """
    status = info.get("status")
    if "copies-total" in info:
        # An every-node project: how many of its copies run, coloured by the summary status.
        counted = f"{info.get('copies-running', 0)}/{info['copies-total']} running"
        return Text(counted, style=STATUS_STYLE.get(str(status), ""))
    stopping = info.get("desired") == "stopped" and status not in ("stopped", "failed")
    if stopping and compact:
        return Text("stopping", style="yellow")
    shown = status_text(status)
    if stopping:
        shown.append(" (stopping)", style="dim")
    return shown


def short(text: object, width: int) -> str:
    value = "" if text is None else str(text)
    return value if len(value) <= width else value[: width - 1] + "…"


# The list tables' columns, in their order; `keep` says which go first at narrow widths
# (fit.py): the name and the status always stay, the reason takes what is left, on one line.
# A name of up to NAME_WHOLE characters is always whole; a longer one is cut (to no less) rather
# than drop where a project runs and why, or a node's projects, RAM and CPU.
NAME_WHOLE = 40
PROJECT_COLUMNS = (
    Column("NAME", min_width=NAME_WHOLE, cut_before=8),
    Column("STATUS"),
    Column("NODE", keep=9),
    Column("UP", keep=6),
    Column("RAM", "right", keep=7),
    Column("DISK", "right", keep=3),
    Column("RESTARTS", "right", keep=5),
    Column("COMMIT", keep=2),
    Column("REASON", keep=8, flexible=True, min_width=12),
)
NODE_COLUMNS = (
    Column("NAME", min_width=NAME_WHOLE, cut_before=6),
    Column("STATUS"),
    Column("PROJECTS", "right", keep=8),
    Column("RAM", keep=7),
    Column("DISK", keep=4),
    Column("CPU", "right", keep=6),
    Column("LAST CONTACT", keep=5),
    Column("LABELS", keep=3, flexible=True, min_width=10),
)


def projects_table(
    projects: Mapping[str, Mapping[str, Any]], now: datetime | None = None
) -> FitTable:
    """One row per project, sorted by name; fits the width it is drawn at, a line a row."""
    rows: list[list[str | Text]] = []
    for name in sorted(projects):
        info = projects[name]
        status = info.get("status")
        node = info.get("node") or ("every node" if "copies" in info else "-")
        if info.get("moving-to"):
            node = f"{node} → {info['moving-to']}"
        up = ago(info.get("started-at"), now) if status == "running" else "-"
        rows.append(
            [
                name,
                project_status(info),
                node,
                up.removesuffix(" ago"),
                size(info.get("ram-usage")),
                size(info.get("disk-usage")),
                str(info.get("restarts") or 0),
                (info.get("commit") or "-")[:10],
                # The flexible column cuts it to the width left; `project show` has it whole.
                str(info.get("reason") or ""),
            ]
        )
    return FitTable(PROJECT_COLUMNS, rows)


def nodes_table(nodes: Mapping[str, Mapping[str, Any]], now: datetime | None = None) -> FitTable:
    """One row per node, sorted by name; fits the width it is drawn at, a line a row."""
    rows: list[list[str | Text]] = []
    for name in sorted(nodes):
        info = nodes[name]
        shown = status_text(info.get("status"))
        if info.get("drained"):
            shown.append(" (drained)", style="yellow")
        if info.get("left"):
            shown.append(" (left)", style="dim")
        if info.get("kind") == "lite":
            shown.append(" (lite device)", style="dim")
        labels = info.get("labels") or {}
        rows.append(
            [
                name,
                shown,
                str(len(info.get("projects") or ())),
                f"{size(info.get('ram-usage'))} / {size(info.get('ram'))}",
                f"{size(info.get('disk-usage'))} / {size(info.get('storage'))}",
                # A dead node's last figure would pass for a current one.
                cpu_cell(info.get("metrics")) if info.get("status") == "alive" else "-",
                ago(info.get("last-contact"), now),
                label_text(labels, ",") or "-",
            ]
        )
    return FitTable(NODE_COLUMNS, rows)


HISTORY_SHOWN = 10  # the last changes `project show` lists (all of them under --json)


def _placement_rows(info: Mapping[str, Any]) -> list[tuple[str, str | Text]]:
    """Where it may run, its health check, grace and memory limit (DESIGN section 12)."""
    rows: list[tuple[str, str | Text]] = []
    if info.get("on"):
        rows.append(("on", " ".join(info["on"])))
    if info.get("every-node"):
        rows.append(("every node", "yes"))
    if info.get("stay"):
        rows.append(("stay", "yes (never moved for balance)"))
    health = info.get("health")
    if isinstance(health, Mapping):
        check = health.get("cmd") or health.get("http") or "-"
        rows.append(
            (
                "health",
                f"{check} every {health.get('interval', 10):g}s, timeout "
                f"{health.get('timeout', 5):g}s, {health.get('retries', 3)} tries",
            )
        )
    if info.get("max-ram"):
        rows.append(("max ram", size(info["max-ram"])))
    if info.get("grace") not in (None, 60.0, 60):
        rows.append(("grace", f"{info['grace']:g}s"))
    if info.get("good-commit"):
        rows.append(("last good", str(info["good-commit"])[:7]))
    if info.get("bad-commit"):
        why = info.get("bad-reason") or "no reason given"
        rows.append(("bad commit", f"{str(info['bad-commit'])[:7]}: {why}"))
    return rows


def project_detail(info: Mapping[str, Any], now: datetime | None = None) -> RenderableType:
    """Everything about one project: fields, variables, and the last lines of its output."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    name = str(info.get("project-name") or "")
    rows: list[tuple[str, str | Text]] = [
        ("project", name),
        ("status", project_status(info)),
        # Why it is not running, right under the status: not below the fold of a small pane.
        *([("reason", Text(str(info["reason"]), style="yellow"))] if info.get("reason") else []),
        ("desired", str(info.get("desired") or "-")),
        ("node", str(info.get("node") or "-")),
        *([("moving to", str(info["moving-to"]))] if info.get("moving-to") else []),
        ("url", str(info.get("project-url") or "-")),
        ("ref", str(info.get("ref") or "(default branch)")),
        ("commit", str(info.get("commit") or "-")),
        ("command", str(info.get("command") or "(syncopate.toml or run.sh)")),
        ("started", ago(info.get("started-at"), now)),
        ("last report", ago(info.get("updated-at"), now)),
        ("pid", str(info.get("pid") or "-")),
        ("restarts", str(info.get("restarts") or 0)),
        ("exit code", "-" if info.get("exit-code") is None else str(info["exit-code"])),
        ("ram", f"{size(info.get('ram-usage'))} (needs {size(info.get('ram'))})"),
        ("disk", f"{size(info.get('disk-usage'))} (needs {size(info.get('disk'))})"),
        ("exclusive", "yes" if info.get("exclusive") else "no"),
        ("epoch", str(info.get("epoch") or 0)),
    ]
    rows.extend(_placement_rows(info))
    env = info.get("env") or {}
    if env:
        rows.append(("env", " ".join(f"{k}={v}" for k, v in sorted(env.items()))))
    secrets = info.get("secrets") or {}
    if secrets:
        # The manager answers `***` for each value; the names are all there is to show.
        rows.append(("secrets", " ".join(f"{k}=***" for k in sorted(secrets))))
    for key, value in rows:
        grid.add_row(key, value)
    parts: list[RenderableType] = [grid, Text()]
    if "copies" in info:
        parts.extend([copies_table(info["copies"]), Text()])
    if "copies" in info:  # each copy's are in the table; these are where a new one starts
        parts.append(Text("persistent variables of a new copy", style="bold"))
    else:
        parts.append(Text("persistent variables", style="bold"))
    parts.append(Text(_compact(info.get("persistent-variables") or {}), style="cyan"))
    history = list(info.get("history") or ())[-HISTORY_SHOWN:]
    if history:
        parts.append(Text())
        parts.append(Text("changes (set)", style="bold"))
        for change in history:
            fields = ", ".join(change.get("fields") or ())
            parts.append(Text(f"{change.get('at')}  {change.get('by')}: {fields}"))
    tail = list(info.get("log-tail") or ())
    if tail:
        parts.append(Text())
        parts.append(Text(f"last {len(tail)} lines of output", style="bold"))
        parts.extend(Text(line) for line in tail)
    return Group(*parts)


COPY_COLUMNS = (
    Column("COPY ON"),
    Column("STATUS"),
    Column("COMMIT", keep=1),
    Column("VARIABLES", keep=2, flexible=True, min_width=12),
)


def copies_table(copies: Mapping[str, Mapping[str, Any]]) -> RenderableType:
    """An every-node project's copies, one line each: node, status, commit, variables."""
    if not copies:
        return Text("copies: none yet (no live node matches)", style="dim")
    rows: list[list[str | Text]] = []
    for node in sorted(copies):
        copy = copies[node]
        variables = json.dumps(copy.get("persistent-variables") or {}, sort_keys=True)
        status = project_status(copy)
        if copy.get("reason"):
            status.append(f" ({short(copy['reason'], 50)})", style="dim")
        rows.append([node, status, str(copy.get("commit") or "-")[:10], variables])
    return FitTable(COPY_COLUMNS, rows)


def _compact(value: Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True)
    lines = text.splitlines()
    if len(lines) > 40:
        lines = [*lines[:40], f"… ({len(lines) - 40} more lines; --json shows all)"]
    return "\n".join(lines)


def as_list(answer: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """DESIGN §8's --json shape: a list of objects, `name` first, then the answer's fields."""
    return [{"name": name, **answer[name]} for name in sorted(answer)]


def first_line(code: object, width: int) -> str:
    """A program's first non-blank line, shortened, with `…` when there is more."""
    lines = [line for line in str(code or "").splitlines() if line.strip()]
    if not lines:
        return "-"
    shown = short(lines[0].strip(), width)
    return shown if len(lines) == 1 or shown.endswith("…") else shown + " …"


def exit_text(info: Mapping[str, Any]) -> str:
    code = info.get("exit-code")
    return "-" if code is None else str(code)


def node_detail(
    info: Mapping[str, Any],
    commands: Sequence[Mapping[str, Any]] | None = None,
    now: datetime | None = None,
) -> RenderableType:
    """One node: its fields, the projects placed there, and its newest commands."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    shown = status_text(info.get("status"))
    if info.get("drained"):
        shown.append(" (drained)", style="yellow")
    labels = info.get("labels") or {}
    rows: list[tuple[str, str | Text]] = [
        ("node", str(info.get("name") or "")),
        ("status", shown),
        ("kind", "lite device" if info.get("kind") == "lite" else "agent"),
        ("last contact", ago(info.get("last-contact"), now)),
        ("address", str(info.get("address") or "-")),
        ("metrics", metrics_text(info.get("metrics"))),
        ("ram", f"{size(info.get('ram-usage'))} used of {size(info.get('ram'))}"),
        ("storage", f"{size(info.get('disk-usage'))} used of {size(info.get('storage'))}"),
        ("labels", label_text(labels) or "-"),
        ("agent", str(info.get("agent-version") or "-")),
        ("projects", ", ".join(info.get("projects") or ()) or "-"),
    ]
    for key, value in rows:
        grid.add_row(key, value)
    parts: list[RenderableType] = [grid]
    if commands:
        parts += [Text(), Text("newest commands", style="bold")]
        for command in commands:
            line = Text(f"{command.get('id')}  ")
            line.append_text(status_text(command.get("state")))
            line.append(f"  exit {exit_text(command)}  {first_line(command.get('code'), 40)}")
            parts.append(line)
    return Group(*parts)


TIME_WIDTH = 19  # `2026-12-03 12:01:02`


def local_time(iso: str | None) -> str:
    """A manager time as `2026-12-03 12:01:02` in the local zone (blank when not known)."""
    if not iso:
        return " " * TIME_WIDTH
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso[:TIME_WIDTH].ljust(TIME_WIDTH)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
