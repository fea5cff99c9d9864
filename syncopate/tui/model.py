"""The fleet as the TUI knows it: the /events snapshot, then each batch of changes applied.

Pure: no textual, no I/O. `apply` returns what changed so the screen touches only those rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KINDS = ("projects", "nodes", "commands")
# The parent's fields a copy's row does not take (they are about all the copies).
_PARENT_ONLY = frozenset({"copies", "copies-running", "copies-total"})


def copy_rows(name: str, info: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """An every-node project's copies as rows of their own, `NAME@NODE` (as the manager names
    them): the parent's fields with the copy's own on top."""
    copies = info.get("copies") if info else None
    if not info or not isinstance(copies, Mapping):
        return {}
    base = {k: v for k, v in info.items() if k not in _PARENT_ONLY}
    return {
        f"{name}@{node}": {**base, **copy, "project-name": f"{name}@{node}", "copy-of": name}
        for node, copy in copies.items()
        if isinstance(copy, Mapping)
    }


def name_order(name: str) -> str:
    """Sorts a copy's row (`NAME@NODE`) right under its project's, before `NAME-2`'s."""
    return name.replace("@", "\x00")


@dataclass
class Delta:
    """The names (ids for commands) that a message changed, added or removed, by kind."""

    changed: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    added: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    removed: dict[str, set[str]] = field(default_factory=lambda: {k: set() for k in KINDS})
    full: bool = False  # a snapshot: everything may have changed

    def touches(self, kind: str) -> bool:
        return self.full or bool(self.changed[kind] or self.added[kind] or self.removed[kind])


@dataclass
class FleetModel:
    projects: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    commands: dict[str, dict[str, Any]] = field(default_factory=dict)
    filter: str = ""
    loaded: bool = False
    # Every-node project -> the names of its copies' rows in `projects`.
    copies: dict[str, set[str]] = field(default_factory=dict)

    def apply(self, message: Mapping[str, Any]) -> Delta:
        """Apply one /events message (a snapshot, or changes); other types change nothing."""
        delta = Delta()
        kind = message.get("type")
        if kind == "snapshot":
            for name in KINDS:
                setattr(self, name, dict(message.get(name) or {}))
            self.copies = {}
            for name, info in list(self.projects.items()):
                self._put_copies(name, info, Delta())
            self.loaded = True
            delta.full = True
            return delta
        if kind != "changes":
            return delta
        for name in KINDS:
            table: dict[str, dict[str, Any]] = getattr(self, name)
            for key, info in (message.get(name) or {}).items():
                if info is None:
                    if table.pop(key, None) is not None:
                        delta.removed[name].add(key)
                elif key in table:
                    table[key] = info
                    delta.changed[name].add(key)
                else:
                    table[key] = info
                    delta.added[name].add(key)
                if name == "projects":
                    self._put_copies(key, info, delta)
        return delta

    def _put_copies(self, parent: str, info: Mapping[str, Any] | None, delta: Delta) -> None:
        """Keep the rows of an every-node project's copies in step with its answer."""
        rows = copy_rows(parent, info)
        for gone in self.copies.pop(parent, set()) - rows.keys():
            if self.projects.pop(gone, None) is not None:
                delta.removed["projects"].add(gone)
        for key, row in rows.items():
            (delta.changed if key in self.projects else delta.added)["projects"].add(key)
            self.projects[key] = row
        if rows:
            self.copies[parent] = set(rows)

    # filter -----------------------------------------------------------------------------------
    def matches(self, kind: str, name: str) -> bool:
        """Whether a row passes the filter: its name, node or status contains the text.

        A node also passes when the name of one of its projects does: filtering by a project
        keeps the node it runs on in sight instead of emptying the nodes table.
        """
        text = self.filter.strip().lower()
        if not text:
            return True
        info = (self.projects if kind == "projects" else self.nodes).get(name, {})
        fields = [name, str(info.get("status") or "")]
        if kind == "projects":
            fields += [str(info.get("node") or ""), str(info.get("moving-to") or "")]
        else:
            # The node's answer names its projects (an every-node copy by its project's name).
            fields += [str(project) for project in info.get("projects") or ()]
        return any(text in value.lower() for value in fields)

    def visible(self, kind: str) -> list[str]:
        """The names of the rows that pass the filter, sorted by name."""
        table = self.projects if kind == "projects" else self.nodes
        return [name for name in sorted(table, key=name_order) if self.matches(kind, name)]

    # the header -------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        # An every-node project counts by its copies, each a row of its own.
        statuses = [str(p.get("status")) for p in self.projects.values() if "copies" not in p]
        alive = sum(1 for n in self.nodes.values() if n.get("status") == "alive")
        return {
            "nodes": len(self.nodes),
            "alive": alive,
            "dead": len(self.nodes) - alive,
            "projects": len(statuses),
            "running": statuses.count("running"),
            "failed": sum(1 for s in statuses if s in ("failed", "lost", "unschedulable")),
        }

    def commands_of(self, node: str, limit: int = 5) -> list[dict[str, Any]]:
        """The node's newest commands, newest first."""
        mine = [c for c in self.commands.values() if c.get("node") == node]
        mine.sort(key=lambda c: int(c.get("id") or 0), reverse=True)
        return mine[:limit]
