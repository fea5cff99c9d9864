"""The TUI benchmark's probe, in the child process: timestamps of what holds a running
`SyncopateApp`'s event loop (its applies, screen refreshes, GC pauses, timers, cell measuring)."""

from __future__ import annotations

import gc
import json
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Refresh:
    start: float
    end: float
    rows: int  # the projects table's virtual height then (rows + header)


class Probe:
    """Watches one running app, with timestamps: its apply calls, its screen refreshes, and
    other spans that hold its event loop (GC pauses, its timers, the tables' cell measuring).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.applies: list[tuple[str, float, float]] = []  # (type, start, end)
        self.refreshes: list[Refresh] = []
        self.spans: list[tuple[str, float, float]] = []  # (what, start, end)
        self.snapshot_bytes = 0
        self.snapshot_decode = 0.0
        self.expect: dict[str, float] | None = None  # project -> ram-usage awaited
        self.seen_all: float | None = None
        self.seen_messages = 0
        self.rows_full: float | None = None  # when an apply left every row in the tables
        self.want_rows = (0, 0)  # (nodes, projects)
        self._gc_start = 0.0
        self._wrap_apply()
        self._wrap_timers()
        gc.callbacks.append(self._gc)

    def close(self) -> None:
        gc.callbacks.remove(self._gc)

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.spans.append((f"gc{info['generation']}", self._gc_start, time.perf_counter()))

    def _wrap_apply(self) -> None:
        original = self.app.apply

        def traced(message: dict[str, Any]) -> None:
            start = time.perf_counter()
            original(message)
            end = time.perf_counter()
            kind = str(message.get("type"))
            self.applies.append((kind, start, end))
            if self.rows_full is None and self.want_rows != (0, 0):
                nodes, projects = self.want_rows
                tables = self.app.query_one("#nodes"), self.app.query_one("#projects")
                if tables[0].row_count >= nodes and tables[1].row_count >= projects:
                    self.rows_full = end
            if kind == "snapshot" and not self.snapshot_bytes:
                text = json.dumps(message, separators=(",", ":"))
                self.snapshot_bytes = len(text)
                began = time.perf_counter()
                json.loads(text)
                self.snapshot_decode = time.perf_counter() - began
            if self.expect is not None and self.seen_all is None and kind == "changes":
                self.seen_messages += 1
                projects = self.app.model.projects
                if all(
                    projects.get(name, {}).get("ram-usage") == value
                    for name, value in self.expect.items()
                ):
                    self.seen_all = end

        setattr(self.app, "apply", traced)  # noqa: B010 (the feed worker calls self.apply)

    def _wrap_timers(self) -> None:
        """refresh_ages and refresh_nodes, as on_mount hands them to set_interval."""
        ages, nodes = self.app.refresh_ages, self.app.refresh_nodes

        def traced_ages() -> None:
            start = time.perf_counter()
            ages()
            self.spans.append(("refresh_ages", start, time.perf_counter()))

        async def traced_nodes() -> None:
            start = time.perf_counter()
            await nodes()
            self.spans.append(("refresh_nodes", start, time.perf_counter()))

        setattr(self.app, "refresh_ages", traced_ages)  # noqa: B010
        setattr(self.app, "refresh_nodes", traced_nodes)  # noqa: B010

    def wrap_screen(self) -> None:
        """Once mounted: the screen's refreshes and the tables' measuring of new rows."""
        screen = self.app.screen
        original = screen._compositor_refresh
        table = self.app.query_one("#projects")

        def traced() -> None:
            start = time.perf_counter()
            original()
            self.refreshes.append(Refresh(start, time.perf_counter(), table.virtual_size.height))

        setattr(screen, "_compositor_refresh", traced)  # noqa: B010
        for kind in ("nodes", "projects"):
            widget = self.app.query_one(f"#{kind}")
            setattr(widget, "_update_dimensions", self._measured(widget._update_dimensions))  # noqa: B010

    def _measured(self, original: Any) -> Any:
        def traced(new_rows: Any) -> None:
            start = time.perf_counter()
            original(new_rows)
            self.spans.append(("measure", start, time.perf_counter()))

        return traced

    def first_refresh_after(self, when: float, min_rows: int = 0) -> float | None:
        for refresh in self.refreshes:
            if refresh.start >= when and refresh.rows >= min_rows:
                return refresh.end
        return None

    def render_time_between(self, start: float, end: float) -> float:
        return sum(r.end - r.start for r in self.refreshes if start <= r.start < end)

    def spent(self, prefix: str, start: float, end: float) -> float:
        """Seconds in spans whose name starts with `prefix` that began in [start, end)."""
        return sum(
            e - s for what, s, e in self.spans if what.startswith(prefix) and start <= s < end
        )

    def overlaps(self, prefix: str, start: float, end: float) -> bool:
        return any(what.startswith(prefix) and s < end and e > start for what, s, e in self.spans)

    def in_the_way(self, start: float, end: float) -> str:
        """Which of a full GC and the app's timers overlapped [start, end), if any."""
        names = ("gc2", "refresh_ages", "refresh_nodes")
        return ", ".join(n for n in names if self.overlaps(n, start, end))

    def durations(self, what: str) -> list[float]:
        return [e - s for name, s, e in self.spans if name == what]
