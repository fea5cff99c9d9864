"""What runs in the TUI benchmark's child process (`tui.py` spawns it): `SyncopateApp`
headless with a `Probe` (tui_probe.py) that stamps its applies, screen refreshes, GC pauses
and timers, the first full render reported, then a `Session` answering the parent's requests
(timed batches, the real feed path, the app's state)."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import os
import pstats
import signal
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from harness.procs import receive
from harness.stats import rss
from tui_probe import Probe

SCREEN = (120, 40)
Sample = dict[str, Any]  # one timed batch: seconds by name, and "busy" (what was in the way)


def spaced(names: list[str], count: int, offset: int) -> list[str]:
    """`count` names spread evenly over the sorted list (so some rows are on screen)."""
    step = max(1, len(names) // count)
    return [names[(offset + i * step) % len(names)] for i in range(min(count, len(names)))]


def profile_text(profile: cProfile.Profile | None, title: str, top: int = 25) -> str:
    """The profile's tops by cumulative and by own time; "" without a profile."""
    if profile is None:
        return ""
    out = io.StringIO()
    out.write(f"--- cProfile: {title} (sorted by cumulative, then by own time) ---\n")
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


async def tui_session(
    conn: Connection, url: str, token: str, nodes: int, projects: int, full: bool, profile: bool
) -> None:
    """Run the app headless; report the first render, then serve the parent's requests."""
    from syncopate.tui.app import SyncopateApp

    report: dict[str, Any] = {"rss_imported": rss(os.getpid())}
    profiler = cProfile.Profile() if profile else None
    cpu0 = time.process_time()
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    app = SyncopateApp(url, token, live=True)
    probe = Probe(app)
    probe.want_rows = (nodes, projects)
    async with app.run_test(size=SCREEN) as pilot:
        report["ready"] = time.perf_counter() - started
        probe.wrap_screen()
        nodes_table, projects_table = app.table("nodes"), app.table("projects")
        while probe.rows_full is None:
            if time.perf_counter() - started > 120:
                raise RuntimeError("the snapshot did not fill the tables within 120 s")
            await asyncio.sleep(0.002)
        report["rows"] = probe.rows_full - started
        full_height = projects + 1  # the header
        while probe.first_refresh_after(0.0, full_height) is None:
            await asyncio.sleep(0.002)
        drawn = probe.first_refresh_after(0.0, full_height) or 0.0
        report["drawn"] = drawn - started
        await pilot.pause()
        report["idle"] = time.perf_counter() - started
        if profiler:
            profiler.disable()
            report["profile"] = profile_text(profiler, "start to first full render")
        report["cpu"] = time.process_time() - cpu0
        snap = next(a for a in probe.applies if a[0] == "snapshot")
        report["snapshot_arrived"] = snap[1] - started
        report["snapshot_apply"] = snap[2] - snap[1]
        report["snapshot_bytes"] = probe.snapshot_bytes
        report["snapshot_decode"] = probe.snapshot_decode
        now = time.perf_counter()
        report["render_time"] = probe.render_time_between(snap[1], now)
        report["measure_time"] = probe.spent("measure", snap[1], now)
        report["gc_time"] = probe.spent("gc", started, now)
        report["gc2"] = sum(1 for w, s, _ in probe.spans if w == "gc2" and started <= s < now)
        report["timers"] = probe.spent("refresh_", started, now)
        report["rows_shown"] = (nodes_table.row_count, projects_table.row_count)
        conn.send(("rendered", report))
        if not full:
            return
        session = Session(app, pilot, probe, profile)
        while True:
            command, *args = await receive(conn)
            if command == "stop":
                break
            conn.send(await getattr(session, f"cmd_{command}")(*args))
    probe.close()


@dataclass
class Session:
    """The parent's requests to a running app."""

    app: Any
    pilot: Any
    probe: Probe
    profile: bool
    serial: int = 0
    expect_at: float = 0.0

    async def timed(
        self, message: dict[str, Any], profiler: cProfile.Profile | None = None
    ) -> Sample:
        """Apply one message as the feed would; the call, until drawn, CPU until idle."""
        probe = self.probe
        if profiler:
            profiler.enable()
        await self.pilot.pause()
        cpu0 = time.process_time()
        start = time.perf_counter()
        self.app.apply(message)
        call = time.perf_counter() - start
        await self.pilot.pause()
        idle = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        drawn = probe.first_refresh_after(start)
        end = time.perf_counter()
        if profiler:
            profiler.disable()
        return {
            "call": call,
            "drawn": (drawn - start) if drawn is not None else float("nan"),
            "idle": idle,
            "cpu": cpu,
            "render": probe.render_time_between(start, end),
            "measure": probe.spent("measure", start, end),
            "gc": probe.spent("gc", start, drawn or end),
            "busy": probe.in_the_way(start, drawn or end),
        }

    def changed_projects(self, count: int) -> dict[str, dict[str, Any]]:
        """`count` projects spread over the table, each with new figures."""
        self.serial += 1
        model = self.app.model.projects
        changes = {}
        for name in spaced(sorted(model), count, self.serial):
            info = dict(model[name])
            info["ram-usage"] = float(info.get("ram-usage") or 0) + 1.5
            info["restarts"] = int(info.get("restarts") or 0) + 1
            info["persistent-variables"] = {"n": self.serial}
            info["updated-at"] = f"2026-01-01T00:00:{self.serial % 60:02d}.000Z"
            changes[name] = info
        return changes

    async def cmd_batches(self, count: int, size: int) -> dict[str, Any]:
        samples = []
        profiler = cProfile.Profile() if self.profile else None
        for _ in range(count):
            message = {"type": "changes", "projects": self.changed_projects(size)}
            samples.append(await self.timed(message, profiler))
        text = profile_text(profiler, f"{count} batches of {size} changed rows")
        return {"samples": samples, "profile": text}

    async def cmd_rebuilds(self, count: int, add: int, remove: int) -> dict[str, Any]:
        """Batches that add and remove rows; every second one undoes the one before, so the
        model ends as the manager knows it (the feed's later changes are changes, not adds).
        """
        samples = []
        profiler = cProfile.Profile() if self.profile else None
        undo: dict[str, dict[str, Any] | None] = {}
        for i in range(count):
            model = self.app.model.projects
            if undo:
                changes, undo = undo, {}
            else:
                names = sorted(model)
                changes = {}
                for name in spaced(names, add, 7 * i):
                    info = dict(model[name])
                    info["name"] = new = f"{name}-copy{i}"
                    changes[new], undo[new] = info, None
                for name in spaced(names, remove, 7 * i + 3):
                    changes[name], undo[name] = None, model[name]
            samples.append(await self.timed({"type": "changes", "projects": changes}, profiler))
        if undo:
            self.app.apply({"type": "changes", "projects": undo})
            await self.pilot.pause()
        title = f"{count} batches adding and removing {add} and {remove} rows"
        return {"samples": samples, "profile": profile_text(profiler, title)}

    async def cmd_nodes_batch(self, count: int) -> dict[str, Any]:
        """Every node with a new contact time: what refresh_nodes applies with a polling fleet."""
        samples = []
        for i in range(count):
            changes = {}
            for name, info in self.app.model.nodes.items():
                changed = dict(info)
                changed["last-contact"] = f"2026-01-01T00:00:{i % 60:02d}.000Z"
                changes[name] = changed
            samples.append(await self.timed({"type": "changes", "nodes": changes}))
        return {"samples": samples}

    async def cmd_fetch_nodes(self, count: int) -> dict[str, Any]:
        """What refresh_nodes does before applying: fetch every node, compare with the model."""
        wall, cpu, changed = [], [], 0
        for _ in range(count):
            await self.pilot.pause()
            start, cpu0 = time.perf_counter(), time.process_time()
            nodes = await self.app.client.nodes()
            changed = sum(1 for n, info in nodes.items() if self.app.model.nodes.get(n) != info)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu0)
        return {"wall": wall, "cpu": cpu, "changed": changed}

    async def cmd_ages(self, count: int) -> dict[str, Any]:
        """refresh_ages (every AGES_REFRESH s, rebuilds every row's cells), called directly."""
        samples = []
        for _ in range(count):
            await self.pilot.pause()
            start = time.perf_counter()
            self.app.refresh_ages()
            samples.append(time.perf_counter() - start)
        return {"samples": samples}

    async def cmd_expect(self, expected: dict[str, float]) -> str:
        self.expect_at = time.perf_counter()
        self.probe.expect = expected
        self.probe.seen_all = None
        self.probe.seen_messages = 0
        return "watching"

    async def cmd_await_seen(self, timeout: float) -> dict[str, Any]:
        """Wait until every expected change is in the model; when, and when it was drawn."""
        probe = self.probe
        deadline = time.perf_counter() + timeout
        while probe.seen_all is None and time.perf_counter() < deadline:
            await asyncio.sleep(0.001)
        seen = probe.seen_all
        drawn = None
        if seen is not None:
            await self.pilot.pause()
            drawn = probe.first_refresh_after(seen)
        probe.expect = None
        # perf_counter and monotonic are the same clock on Linux; send monotonic stamps.
        shift = time.monotonic() - time.perf_counter()
        end = drawn or seen or time.perf_counter()
        return {
            "seen": None if seen is None else seen + shift,
            "drawn": None if drawn is None else drawn + shift,
            "messages": probe.seen_messages,
            "busy": probe.in_the_way(self.expect_at, end),
        }

    async def cmd_state(self) -> dict[str, Any]:
        kinds = Counter(kind for kind, _, _ in self.probe.applies)
        names = ("gc2", "refresh_ages", "refresh_nodes")
        return {
            "applies": dict(kinds),
            "spans": {n: self.probe.durations(n) for n in names},
            "objects": len(gc.get_objects()),
        }


def tui_main(
    conn: Connection, url: str, token: str, nodes: int, projects: int, full: bool, profile: bool
) -> None:
    """Entry point of the TUI process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent ends us
    # A terminal on stdin, as when a user runs the TUI: Rich asks for the terminal's size on
    # every cell it measures (os.get_terminal_size on fd 0, 1, 2 until one answers), and
    # without a terminal all three calls fail, which costs more than one that succeeds.
    _, terminal = os.openpty()
    os.dup2(terminal, 0)
    started = time.perf_counter()
    import textual.app  # noqa: F401 (timed: the import is part of a real start)

    import syncopate.tui.app  # noqa: F401

    conn.send(("imported", time.perf_counter() - started))
    try:
        asyncio.run(tui_session(conn, url, token, nodes, projects, full, profile))
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise
