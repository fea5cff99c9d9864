"""What the full-screen detail (Enter) shows: everything about one project or one node.

Pure functions of the manager's answers, the fleet model and a clock, so tests read them
without a screen. The main screen's pane (`render.project_detail`) is a summary that fits a
few rows; this is the whole record, in sections, each long value wrapped rather than cut.
Environment variables and secrets show by name only: a detail on a shared screen is no place
for their values.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from syncopate.constraints import label_text
from syncopate.metrics_text import duration
from syncopate.render import (
    ago,
    copies_table,
    exit_text,
    first_line,
    project_status,
    size,
    status_text,
)
from syncopate.tui.model import FleetModel

Row = tuple[str, str | Text]


def grid(rows: Iterable[Row]) -> Table:
    """`label  value` rows; a long value wraps in its column (a long word folds)."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True, min_width=11)
    table.add_column(overflow="fold")
    for label, value in rows:
        table.add_row(label, value)
    return table


def section(title: str, rows: Iterable[Row]) -> list[RenderableType]:
    """A blank line, a bold heading, then the rows."""
    return [Text(), Text(title, style="bold underline"), grid(rows)]


def lines(title: str, shown: Sequence[str | Text], empty: str) -> list[RenderableType]:
    """A bold heading, then one line each (a dim `empty` when there are none)."""
    body: list[RenderableType] = [Text(), Text(title, style="bold underline")]
    if not shown:
        return [*body, Text(empty, style="dim")]
    return [*body, *(Text(line) if isinstance(line, str) else line for line in shown)]


def value_text(value: Any) -> str:
    """A variable's value as JSON (`"text"`, `12`, `[1, 2]`), so its type shows."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def short_commit(commit: object) -> str:
    return str(commit)[:12] if commit else "-"


# project --------------------------------------------------------------------------------------
def project_rows(info: Mapping[str, Any], now: datetime) -> list[Row]:
    """The top rows: where it stands and why."""
    node = str(info.get("node") or ("every node" if "copies" in info else "-"))
    if info.get("moving-to"):
        node += f" → moving to {info['moving-to']}"
    rows: list[Row] = [
        ("status", project_status(info)),
        ("desired", str(info.get("desired") or "-")),
        ("node", node),
    ]
    if info.get("reason"):
        rows.append(("reason", Text(str(info["reason"]), style="yellow")))
    running = info.get("status") == "running"
    rows += [
        ("url", str(info.get("project-url") or "-")),
        ("ref", str(info.get("ref") or "(default branch)")),
        ("command", str(info.get("command") or "(syncopate.toml or run.sh)")),
        ("started", ago(info.get("started-at"), now) if running else "-"),
        ("pid", str(info.get("pid") or "-")),
        ("restarts", str(info.get("restarts") or 0)),
        ("exit code", exit_text(info)),
        ("last report", ago(info.get("updated-at"), now)),
        ("ram", f"{size(info.get('ram-usage'))} used, needs {size(info.get('ram'))}"),
        ("disk", f"{size(info.get('disk-usage'))} used, needs {size(info.get('disk'))}"),
    ]
    return rows


def commit_rows(info: Mapping[str, Any]) -> list[Row]:
    """The rollout: what runs, the last commit that worked, the one rolled back from and why."""
    rows: list[Row] = [
        ("current", short_commit(info.get("commit"))),
        ("good", short_commit(info.get("good-commit"))),
        ("bad", short_commit(info.get("bad-commit"))),
    ]
    if info.get("bad-commit"):
        why = str(info.get("bad-reason") or "no reason given")
        rows.append(("bad reason", Text(why, style="yellow")))
        if info.get("rollout-retry"):
            rows.append(("retry", "yes: its node may try the bad commit again"))
    return rows


def variable_lines(info: Mapping[str, Any]) -> list[str]:
    variables = info.get("persistent-variables") or {}
    return [f"{name} = {value_text(variables[name])}" for name in sorted(variables)]


def env_lines(info: Mapping[str, Any]) -> list[str | Text]:
    """The names of its environment variables and secrets: never a value."""
    shown: list[str | Text] = [str(name) for name in sorted(info.get("env") or {})]
    for name in sorted(info.get("secrets") or {}):
        line = Text(str(name))
        line.append("  (secret)", style="dim")
        shown.append(line)
    return shown


def placement_rows(info: Mapping[str, Any]) -> list[Row]:
    """Where it may run (constraints on node labels) and how its health is checked."""
    health = info.get("health")
    check = "-"
    if isinstance(health, Mapping) and (health.get("cmd") or health.get("http")):
        check = (
            f"{health.get('cmd') or health.get('http')}\nevery {health.get('interval', 10):g}s, "
            f"timeout {health.get('timeout', 5):g}s, {health.get('retries', 3)} tries"
        )
    return [
        ("on labels", " ".join(info.get("on") or ()) or "any node"),
        ("every node", "yes" if info.get("every-node") else "no"),
        ("stay", "yes (never moved for balance)" if info.get("stay") else "no"),
        ("exclusive", "yes" if info.get("exclusive") else "no"),
        ("health", check),
        ("grace", f"{info['grace']:g}s" if info.get("grace") is not None else "-"),
        ("max ram", size(info["max-ram"]) if info.get("max-ram") else "-"),
    ]


def history_lines(info: Mapping[str, Any], now: datetime) -> list[str]:
    """Who changed what and when, newest first."""
    return [
        f"{change.get('at')} ({ago(change.get('at'), now)})  {change.get('by')}: "
        + ", ".join(change.get("fields") or ())
        for change in reversed(list(info.get("history") or ()))
    ]


def project_full(
    info: Mapping[str, Any], output: Sequence[str] | None, now: datetime
) -> RenderableType:
    """Everything about a project. `output`: its last lines as the manager keeps them (None
    until they are fetched: the node's last reported lines stand in)."""
    parts: list[RenderableType] = [grid(project_rows(info, now))]
    if "copies" in info:
        parts += [Text(), Text("copies", style="bold underline"), copies_table(info["copies"])]
    parts += section("commits", commit_rows(info))
    parts += lines("variables", variable_lines(info), "none")
    parts += lines("environment (names only)", env_lines(info), "none")
    parts += section("placement and health", placement_rows(info))
    shown = list(output if output is not None else info.get("log-tail") or ())
    parts += lines(f"last output ({len(shown)} lines)", shown, "no output kept")
    parts += lines("history (set)", history_lines(info, now), "no changes since it was added")
    return Group(*parts)


# node -----------------------------------------------------------------------------------------
def metric(metrics: Mapping[str, Any], key: str, show: Callable[[float], str]) -> str:
    """One of a node's figures as `show` writes it; `-` when the node does not know it."""
    value = metrics.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return show(float(value))


def node_rows(info: Mapping[str, Any], now: datetime) -> list[Row]:
    shown = status_text(info.get("status"))
    if info.get("drained"):
        shown.append(" (drained)", style="yellow")
    metrics = info.get("metrics")
    if not isinstance(metrics, Mapping) or info.get("status") != "alive":
        metrics = {}  # as in the nodes table: a dead node's last figures would pass for current
    return [
        ("status", shown),
        ("kind", "lite device" if info.get("kind") == "lite" else "agent"),
        ("address", str(info.get("address") or "-")),
        ("last contact", ago(info.get("last-contact"), now)),
        ("joined", f"{info.get('joined-at') or '-'} ({ago(info.get('joined-at'), now)})"),
        ("agent", str(info.get("agent-version") or "-")),
        ("labels", label_text(info.get("labels") or {}, "  ") or "-"),
        ("cpu", metric(metrics, "cpu", "{:.0f}%".format)),
        ("load", metric(metrics, "load", "{:.2f}".format)),
        ("temperature", metric(metrics, "temperature", "{:.1f} °C".format)),
        ("uptime", metric(metrics, "uptime", duration)),
        ("ram", f"{size(info.get('ram-usage'))} used of {size(info.get('ram'))}"),
        ("disk", f"{size(info.get('disk-usage'))} used of {size(info.get('storage'))}"),
    ]


def placed_grid(names: Sequence[str], model: FleetModel) -> RenderableType:
    """The projects on the node, one line each: name, status, RAM and disk used."""
    if not names:
        return Text("none", style="dim")
    table = Table.grid(padding=(0, 2))
    table.add_column(overflow="fold")
    for _ in range(3):
        table.add_column(no_wrap=True)
    for name in sorted(names):
        project = model.projects.get(name, {})
        status = project_status(project) if project else Text("-")
        ram, disk = size(project.get("ram-usage")), size(project.get("disk-usage"))
        table.add_row(name, status, f"ram {ram}", f"disk {disk}")
    return table


def command_lines(commands: Sequence[Mapping[str, Any]]) -> list[str | Text]:
    shown: list[str | Text] = []
    for command in commands:
        line = Text(f"{command.get('id')}  ")
        line.append_text(status_text(command.get("state")))
        line.append(f"  exit {exit_text(command)}  {first_line(command.get('code'), 40)}")
        shown.append(line)
    return shown


def node_full(name: str, model: FleetModel, now: datetime) -> RenderableType:
    """Everything about a node: its fields, metrics, the projects on it, its newest commands."""
    info = model.nodes[name]
    parts: list[RenderableType] = [grid(node_rows(info, now))]
    placed = list(info.get("projects") or ())
    parts += [Text(), Text(f"projects on it ({len(placed)})", style="bold underline")]
    parts.append(placed_grid(placed, model))
    parts += lines("newest commands", command_lines(model.commands_of(name)), "none")
    return Group(*parts)


def full_detail(
    model: FleetModel, kind: str, name: str, output: Sequence[str] | None, now: datetime
) -> RenderableType:
    """The detail of (kind, name), or a line saying it is gone."""
    if kind == "projects" and name in model.projects:
        return project_full(model.projects[name], output, now)
    if kind == "nodes" and name in model.nodes:
        return node_full(name, model, now)
    return Text(f"{name} is gone (removed from the fleet)", style="bold yellow")
