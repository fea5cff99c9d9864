"""TUI benchmark: the Textual controller following a real manager with a large simulated fleet.

    python benchmarks/tui.py                       # 1,000 nodes, 5,000 projects; under a minute
    python benchmarks/tui.py --nodes 100 --projects 500 --batches 5 --renders 1
    python benchmarks/tui.py --profile             # and cProfile tops from the TUI process

It starts a manager subprocess on 127.0.0.1, joins --nodes simulated nodes (/node-initialize, no
agent-version), adds --projects projects through the controller API (`add`, start), and has each
node report its projects `running` once (/node-status, then /node-update with the epoch it was
given). Then it runs `SyncopateApp(url, token, live=True)` headless (`run_test`) in a child
process, which follows /events for real, and times:

1. the first full render: from the app's start until both tables hold every row of the /events
   snapshot and the screen has been drawn with them (--renders fresh processes);
2. batches of --batch-size changed projects given to `app.apply` directly (the TUI's own cost),
   batches that add and remove a few rows (a table rebuild), every node changed at once, the
   app's 5 s timers, and batches that go the real way: nodes report new figures, the manager
   batches them onto /events, the app shows them. What else held the app's event loop in a
   sample (a full GC, a timer) is named beside it;
3. the TUI process's RSS (psutil, from this process) once the snapshot is shown, and at the end.

It prints figures next to the targets, asserts nothing, and ends every subprocess on exit, Ctrl-C
and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import multiprocessing
import os
import pstats
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import psutil
from common import (
    Manager,
    ms,
    percentile,
    syncopate_version,
    terminate_on_sigterm,
    verdict,
)
from common import start_manager as common_start_manager
from fleet import receive

from syncopate.client import ManagerClient

HOST = "127.0.0.1"
PASSWORD = "bench-password"
PY = sys.executable
LISTENING = re.compile(r"Syncopate manager listening on (https?://\S+)")
NODE_TIMEOUT = 3600.0  # s: the simulated nodes report once and then stay silent
NODE_CAPACITY_MB = 1_000_000.0  # every project fits anywhere
PROJECT_DISK_MB = 12.5  # the same on every project: placement stays even, no balance moves
IN_FLIGHT = 32  # node requests in flight while setting up
ADD_IN_FLIGHT = 8  # controller adds in flight
SCREEN = (120, 40)
TARGET_RENDER = 2.0  # s: first full render
TARGET_BATCH = 0.050  # s: a batch of 100 changed rows
TARGET_RSS_MB = 200.0
FEED_TIMEOUT = 30.0  # s to wait for a real-path batch to show in the app
Sample = dict[str, Any]  # one timed batch: seconds by name, and "busy" (what was in the way)


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def spread(values: list[float]) -> str:
    """`p50 X  max Y  min Z  (n=N)` in milliseconds."""
    if not values:
        return "no samples"
    return (
        f"p50 {ms(percentile(values, 0.5)):>9}  max {ms(max(values)):>9}  "
        f"min {ms(min(values)):>9}  (n={len(values)})"
    )


def mb(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.0f} MB"


def rss_of(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).memory_info().rss)
    return 0


def uss_of(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).memory_full_info().uss)
    return 0


def cpu_of(pid: int) -> float:
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(pid).cpu_times()
        return float(times.user + times.system)
    return float("nan")


def spaced(names: list[str], count: int, offset: int) -> list[str]:
    """`count` names spread evenly over the sorted list (so some rows are on screen)."""
    step = max(1, len(names) // count)
    return [names[(offset + i * step) % len(names)] for i in range(min(count, len(names)))]


def profile_text(profile: cProfile.Profile, title: str, top: int = 25) -> str:
    out = io.StringIO()
    out.write(f"--- cProfile: {title} (sorted by cumulative, then by own time) ---\n")
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# the TUI process (a child: `multiprocessing` spawn)
# --------------------------------------------------------------------------------------------
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


def rss_self() -> int:
    return int(psutil.Process().memory_info().rss)


async def tui_session(
    conn: Connection, url: str, token: str, nodes: int, projects: int, full: bool, profile: bool
) -> None:
    """Run the app headless; report the first render, then serve the parent's requests."""
    from syncopate.tui.app import SyncopateApp

    report: dict[str, Any] = {"rss_imported": rss_self()}
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
        report["rss_rendered"] = rss_self()
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

    async def timed(self, message: dict[str, Any]) -> Sample:
        """Apply one message as the feed would; the call, until drawn, CPU until idle."""
        probe = self.probe
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
            if profiler:
                profiler.enable()
            samples.append(await self.timed(message))
            if profiler:
                profiler.disable()
        text = profile_text(profiler, f"{count} batches of {size} changed rows") if profiler else ""
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
            if profiler:
                profiler.enable()
            samples.append(await self.timed({"type": "changes", "projects": changes}))
            if profiler:
                profiler.disable()
        if undo:
            self.app.apply({"type": "changes", "projects": undo})
            await self.pilot.pause()
        title = f"{count} batches adding and removing {add} and {remove} rows"
        return {"samples": samples, "profile": profile_text(profiler, title) if profiler else ""}

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
            "rss": rss_self(),
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


# --------------------------------------------------------------------------------------------
# the manager and the simulated fleet (this process)
# --------------------------------------------------------------------------------------------
@dataclass
class Children:
    """Every process this program started; ended on exit."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tuis: list[BaseProcess] = field(default_factory=list)

    def start(self, command: list[str], log_file: Path) -> subprocess.Popen[bytes]:
        with log_file.open("ab") as out:
            # A session of its own: Ctrl-C reaches only this program, which ends the process.
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    @staticmethod
    def end_tui(proc: BaseProcess, timeout: float = 10.0) -> None:
        proc.join(timeout)
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
        if proc.is_alive():
            proc.kill()
            proc.join(5)

    def stop_all(self) -> None:
        for tui in self.tuis:
            self.end_tui(tui, timeout=0.1)
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def start_manager(children: Children, folder: Path) -> Manager:
    return common_start_manager(
        children.start, folder, PASSWORD, "--node-timeout", f"{NODE_TIMEOUT:g}", host=HOST
    )


@dataclass
class Placed:
    node: str
    token: str
    url: str
    epoch: int


@dataclass
class Fleet:
    """The simulated nodes: names, tokens, and which project each holds (with its epoch)."""

    client: ManagerClient  # node side: no token, one connection pool for every node
    tokens: dict[str, str] = field(default_factory=dict)
    placed: dict[str, Placed] = field(default_factory=dict)
    ram: dict[str, float] = field(default_factory=dict)

    async def gather(self, calls: Iterator[Any], limit: int) -> list[Any]:
        gate = asyncio.Semaphore(limit)

        async def one(call: Any) -> Any:
            async with gate:
                return await call

        return list(await asyncio.gather(*(one(c) for c in calls)))

    async def join(self, count: int) -> None:
        async def join_one(i: int) -> None:
            name, token = await self.client.initialize(
                PASSWORD, f"node-{i:04d}", storage=NODE_CAPACITY_MB, ram=NODE_CAPACITY_MB
            )
            self.tokens[name] = token

        await self.gather((join_one(i) for i in range(count)), IN_FLIGHT)

    async def poll_all(self) -> None:
        async def poll(name: str) -> None:
            answer = await self.client.node_status(name, self.tokens[name])
            for project, info in answer.get("projects", {}).items():
                self.placed[project] = Placed(
                    name, self.tokens[name], str(info["project-url"]), int(info["epoch"])
                )

        await self.gather((poll(n) for n in self.tokens), IN_FLIGHT)

    async def report(self, project: str, ram: float, variables: int) -> None:
        where = self.placed[project]
        self.ram[project] = ram
        body = {
            "project-name": project,
            "project-url": where.url,
            "status": "running",
            "disk-usage": PROJECT_DISK_MB,
            "ram-usage": ram,
            "persistent-variables": {"n": variables},
            "epoch": where.epoch,
            "commit": f"{abs(hash(project)) % 16**10:010x}",
            "pid": 1000 + len(self.ram),
            "restarts": 0,
        }
        await self.client.node_update(where.node, where.token, body)

    async def report_all(self) -> None:
        calls = (
            self.report(p, 20.0 + (i % 200) * 0.5, 1) for i, p in enumerate(sorted(self.placed))
        )
        await self.gather(calls, IN_FLIGHT)


async def add_projects(controller: ManagerClient, count: int) -> list[str]:
    names = [f"proj-{i:05d}" for i in range(count)]
    failures: Counter[str] = Counter()
    pending = iter(names)

    async def adder() -> None:
        for name in pending:
            try:
                await controller.add(
                    name, f"file:///srv/{name}.git", initial_variables={"n": 0}, start=True
                )
            except Exception as exc:
                failures[f"{type(exc).__name__}: {exc}"[:120]] += 1

    await asyncio.gather(*(adder() for _ in range(ADD_IN_FLIGHT)))
    for reason, n in failures.most_common(3):
        print(f"    add failures: {n} x {reason}")
    return names


async def wait_running(controller: ManagerClient, count: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    running = 0
    while time.monotonic() < deadline:
        running = (await controller.health())["projects"].get("running", 0)
        if running >= count:
            break
        await asyncio.sleep(0.2)
    return int(running)


async def set_up(manager: Manager, args: argparse.Namespace) -> Fleet:
    fleet = Fleet(ManagerClient(manager.url))
    started = time.monotonic()
    await fleet.join(args.nodes)
    took = time.monotonic() - started
    print(f"  joined {len(fleet.tokens):,} nodes in {took:.1f} s ({IN_FLIGHT} in flight)")
    async with ManagerClient(manager.url, manager.token, timeout=120) as controller:
        started = time.monotonic()
        await add_projects(controller, args.projects)
        took = time.monotonic() - started
        print(
            f"  added {args.projects:,} projects in {took:.1f} s "
            f"({args.projects / took:,.0f} adds/s, {ADD_IN_FLIGHT} in flight)"
        )
        started = time.monotonic()
        await fleet.poll_all()
        await fleet.report_all()
        running = await wait_running(controller, args.projects)
        took = time.monotonic() - started
        status = await controller.status()
    per_node = Counter(str(p.get("node")) for p in status.values())
    moving = sum(1 for p in status.values() if p.get("moving-to"))
    print(
        f"  every node polled once and reported its projects running: {running:,}/"
        f"{args.projects:,} running after {took:.1f} s; projects per node "
        f"{min(per_node.values(), default=0)}..{max(per_node.values(), default=0)}, moving {moving}"
    )
    return fleet


# --------------------------------------------------------------------------------------------
# driving the TUI process
# --------------------------------------------------------------------------------------------
@dataclass
class Tui:
    proc: BaseProcess
    conn: Connection

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    async def next(self, what: str, timeout: float = 180) -> Any:
        kind, value = await asyncio.wait_for(receive(self.conn), timeout)
        if kind == "failed":
            raise RuntimeError(f"the TUI process failed: {value}")
        if kind != what:
            raise RuntimeError(f"the TUI process said {kind!r}, expected {what!r}")
        return value

    async def ask(self, command: str, *args: Any, timeout: float = 180) -> Any:
        self.conn.send((command, *args))
        return await asyncio.wait_for(receive(self.conn), timeout)


def start_tui(
    children: Children, manager: Manager, args: argparse.Namespace, full: bool, profile: bool
) -> Tui:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    proc = context.Process(
        target=tui_main,
        args=(child, manager.url, manager.token, args.nodes, args.projects, full, profile),
        daemon=True,
    )
    proc.start()
    child.close()
    children.tuis.append(proc)
    return Tui(proc, parent)


@dataclass
class Render:
    imported: float
    report: dict[str, Any]
    rss: int  # psutil, from this process, once the snapshot is drawn
    uss: int


async def first_render(tui: Tui) -> Render:
    imported = await tui.next("imported")
    report = await tui.next("rendered")
    return Render(imported, report, rss_of(tui.pid), uss_of(tui.pid))


def print_render(i: int, render: Render) -> None:
    r = render.report
    applied = r["snapshot_arrived"] + r["snapshot_apply"]
    print(f"  run {i} (imports took {render.imported:.2f} s before the app started; not counted)")
    print(
        f"    from the app's start: mounted {r['ready']:.2f} s, snapshot arrived "
        f"{r['snapshot_arrived']:.2f} s, applied {applied:.2f} s "
        f"(apply {ms(r['snapshot_apply'])}), "
        f"all rows in the tables {r['rows']:.2f} s, drawn with all rows {r['drawn']:.2f} s, "
        f"idle {r['idle']:.2f} s"
    )
    print(
        f"    snapshot {r['snapshot_bytes'] / 1e6:.1f} MB of JSON (json.loads of it: "
        f"{ms(r['snapshot_decode'])}); rows {r['rows_shown'][0]:,} nodes, "
        f"{r['rows_shown'][1]:,} projects; CPU to idle {r['cpu']:.2f} s"
    )
    print(
        f"    after the snapshot arrived: DataTable measuring the new rows (on idle) "
        f"{ms(r['measure_time'])}, screen refreshes {ms(r['render_time'])}; since the start: "
        f"GC {ms(r['gc_time'])} ({r['gc2']} full), the app's 5 s timers {ms(r['timers'])}"
    )
    print(
        f"    RSS {mb(render.rss)} (USS {mb(render.uss)}) once drawn; "
        f"{mb(r['rss_imported'])} after the imports"
    )


def print_samples(title: str, samples: list[Sample]) -> None:
    print(f"  {title}")
    for key, text in (
        ("call", "app.apply() call            "),
        ("drawn", "until drawn                  "),
        ("idle", "until idle (pilot.pause())  "),
        ("cpu", "CPU, call to idle            "),
        ("render", "  screen refreshes in it    "),
        ("measure", "  DataTable measuring rows  "),
        ("gc", "  GC pauses before drawn    "),
    ):
        print(f"    {text} {spread([s[key] for s in samples])}")
    hit = [s for s in samples if s["busy"]]
    if hit:
        clean = [s["drawn"] for s in samples if not s["busy"]]
        print(
            f"    {len(hit)} of {len(samples)} had a full (gen-2) GC or one of the app's 5 s "
            f"timers before drawn ({', '.join(sorted(Counter(s['busy'] for s in hit)))}); "
            f"without those, until drawn {spread(clean)}"
        )


async def feed_batches(tui: Tui, fleet: Fleet, count: int, size: int) -> list[Sample]:
    """Nodes report new figures for `size` projects; time until the app's model has them all."""
    names = sorted(fleet.placed)
    results = []
    for i in range(count):
        chosen = spaced(names, size, 11 * i + 5)
        expected = {p: round(fleet.ram[p] + 0.25 + i, 2) for p in chosen}
        await tui.ask("expect", expected)
        sent = time.monotonic()
        calls = (fleet.report(p, expected[p], 2 + i) for p in chosen)
        await fleet.gather(calls, IN_FLIGHT)
        answered = time.monotonic()
        seen = await tui.ask("await_seen", FEED_TIMEOUT, timeout=FEED_TIMEOUT + 10)
        if seen["seen"] is None:
            print(f"    batch {i}: NOT all seen within {FEED_TIMEOUT:g} s")
            continue
        results.append(
            {
                "sent": seen["seen"] - sent,
                "answered": seen["seen"] - answered,
                "reports": answered - sent,
                "drawn": (seen["drawn"] or float("nan")) - sent,
                "messages": seen["messages"],
                "busy": seen["busy"],
            }
        )
        await asyncio.sleep(0.3)  # apart, so each batch starts with an idle feed
    return results


def print_feed(results: list[Sample], size: int) -> None:
    print(f"  real path: {size} /node-update reports -> manager -> /events -> app.model")
    for key, text in (
        ("reports", f"the {size} reports answered    "),
        ("sent", "first report -> all in model "),
        ("answered", "last answer -> all in model  "),
        ("drawn", "first report -> drawn        "),
    ):
        print(f"    {text} {spread([r[key] for r in results])}")
    busy = [r for r in results if r["busy"]]
    if busy:
        clean = [r["sent"] for r in results if not r["busy"]]
        print(
            f"    {len(busy)} of {len(results)} had a full GC or one of the app's 5 s timers in "
            f"the way ({', '.join(sorted(Counter(r['busy'] for r in busy)))}); without those, "
            f"first report -> all in model {spread(clean)}"
        )
    messages = Counter(int(r["messages"]) for r in results)
    print(
        "    /events messages that carried a batch: "
        + ", ".join(f"{n} in {c} batch(es)" for n, c in sorted(messages.items()))
        + " (the manager flushes changes every 0.1 s)"
    )


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------
@dataclass
class Results:
    renders: list[Render] = field(default_factory=list)
    batches: list[Sample] = field(default_factory=list)
    rebuilds: list[Sample] = field(default_factory=list)
    feed: list[Sample] = field(default_factory=list)
    rss_end: int = 0


async def run(args: argparse.Namespace, tmp: Path, children: Children) -> Results:
    print("Syncopate TUI benchmark (traffic on 127.0.0.1 only)")
    print(
        f"  machine: {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
        f"syncopate {syncopate_version()}; textual {textual_version()}"
    )
    print(
        f"  fleet: {args.nodes:,} simulated nodes, {args.projects:,} projects; "
        f"screen {SCREEN[0]}x{SCREEN[1]}, headless (run_test)"
    )
    if args.profile:
        print("  --profile: the last TUI process runs under cProfile; its times are 2-3x longer")
    manager = start_manager(children, tmp / "manager")
    print(
        f"\nsetup: manager pid {manager.proc.pid} at {manager.url} "
        f"(node-timeout {NODE_TIMEOUT:g} s)"
    )
    fleet = await set_up(manager, args)
    results = Results()
    try:
        print(f"\n1. first full render ({args.renders} fresh TUI process(es))")
        for i in range(1, args.renders + 1):
            full = i == args.renders
            tui = start_tui(children, manager, args, full, args.profile and full)
            render = await first_render(tui)
            results.renders.append(render)
            print_render(i, render)
            if not full:
                Children.end_tui(tui.proc)
        cpu_before = cpu_of(manager.proc.pid)
        if args.profile and render.report.get("profile"):
            print(render.report["profile"])
        print(f"\n2. batches (TUI pid {tui.pid}; changed rows spread over the table)")
        answer = await tui.ask("batches", args.batches, args.batch_size)
        results.batches = answer["samples"]
        print_samples(f"{args.batch_size} changed projects, app.apply() directly", results.batches)
        if answer["profile"]:
            print(answer["profile"])
        answer = await tui.ask("rebuilds", args.rebuilds, 3, 2)
        results.rebuilds = answer["samples"]
        print_samples(
            "3 projects added and 2 removed, then the reverse (the table is rebuilt)",
            results.rebuilds,
        )
        if answer["profile"]:
            print(answer["profile"])
        answer = await tui.ask("nodes_batch", 3)
        print_samples(
            f"all {args.nodes:,} nodes with a new contact time (what refresh_nodes applies "
            "every 5 s when the nodes poll)",
            answer["samples"],
        )
        answer = await tui.ask("fetch_nodes", 3)
        print(
            f"  refresh_nodes' fetch of all nodes and comparison with the model: wall "
            f"{spread(answer['wall'])}; the TUI process's CPU {spread(answer['cpu'])} "
            f"({answer['changed']} nodes differ)"
        )
        answer = await tui.ask("ages", 3)
        print(f"  refresh_ages() (every 5 s: every row's cells again)  {spread(answer['samples'])}")
        results.feed = await feed_batches(tui, fleet, args.feed_batches, args.batch_size)
        print_feed(results.feed, args.batch_size)
        state = await tui.ask("state")
        results.rss_end = rss_of(tui.pid)
        print(
            f"\n3. TUI process RSS at the end: {mb(results.rss_end)} (USS {mb(uss_of(tui.pid))}); "
            f"messages applied: {state['applies']}; manager CPU during 2.: "
            f"{cpu_of(manager.proc.pid) - cpu_before:.1f} s"
        )
        spans = state["spans"]
        print(
            f"  over the TUI process's life: {len(spans['gc2'])} full GCs "
            f"({state['objects']:,} objects tracked at the end), pause {spread(spans['gc2'])}"
        )
        print(f"  timer refresh_ages  (every 5 s) {spread(spans['refresh_ages'])}")
        print(
            f"  timer refresh_nodes (every 5 s) {spread(spans['refresh_nodes'])} (wall, with the "
            "fetch and any wait for the busy loop)"
        )
        tui.conn.send(("stop",))
        Children.end_tui(tui.proc)
    finally:
        await fleet.client.close()
    return results


def textual_version() -> str:
    from importlib.metadata import version

    return version("textual")


def print_targets(results: Results, args: argparse.Namespace) -> None:
    renders = [r.report["drawn"] for r in results.renders]
    worst_render = max(renders, default=float("inf"))
    rss = max([r.rss for r in results.renders] + [results.rss_end]) / 2**20
    batch = [s["drawn"] for s in results.batches]
    call = [s["call"] for s in results.batches]
    print(f"\ntargets ({args.nodes:,} nodes, {args.projects:,} projects)")
    rows = [
        (
            f"first full render <= {TARGET_RENDER:g} s (max of {len(renders)})",
            f"{worst_render:.2f} s",
            worst_render <= TARGET_RENDER,
        ),
        (
            f"batch of {args.batch_size} changed rows, call, p50",
            ms(percentile(call, 0.5)),
            percentile(call, 0.5) <= TARGET_BATCH,
        ),
        (
            f"batch of {args.batch_size} changed rows, until drawn, p50",
            ms(percentile(batch, 0.5)),
            percentile(batch, 0.5) <= TARGET_BATCH,
        ),
        (
            f"batch of {args.batch_size} changed rows, until drawn, max",
            ms(max(batch, default=float("inf"))),
            max(batch, default=float("inf")) <= TARGET_BATCH,
        ),
        (
            f"TUI RSS <= {TARGET_RSS_MB:g} MB (max seen)",
            f"{rss:.0f} MB",
            rss <= TARGET_RSS_MB,
        ),
    ]
    for text, value, ok in rows:
        print(f"  {text:52} measured {value:>9}  {verdict(ok)}")
    if results.rebuilds:
        drawn = [s["drawn"] for s in results.rebuilds]
        print(
            f"  (not a target: a batch that adds/removes rows, until drawn p50 "
            f"{ms(percentile(drawn, 0.5))}, max {ms(max(drawn))}; real path first report -> "
            f"in model p50 {ms(percentile([r['sent'] for r in results.feed], 0.5))})"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000, help="simulated nodes")
    parser.add_argument("--projects", type=int, default=5000, help="projects to add")
    parser.add_argument("--renders", type=int, default=3, help="fresh TUI processes timed")
    parser.add_argument("--batches", type=int, default=20, help="direct batches of changes")
    parser.add_argument("--batch-size", type=int, default=100, help="changed projects per batch")
    parser.add_argument("--rebuilds", type=int, default=6, help="batches adding/removing rows")
    parser.add_argument("--feed-batches", type=int, default=10, help="batches the real way")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the last TUI process; print the tops"
    )
    args = parser.parse_args(argv)
    if min(args.nodes, args.projects, args.renders, args.batches, args.batch_size) < 1:
        parser.error("--nodes, --projects, --renders, --batches and --batch-size must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # progress shows up in a log file too
    children = Children()
    # The children are ended before the temporary directory is removed.
    with (
        terminate_on_sigterm(),
        tempfile.TemporaryDirectory(prefix="syncopate-tui-bench-") as tmp,
    ):
        try:
            results = asyncio.run(run(args, Path(tmp), children))
        except KeyboardInterrupt:
            print("\ninterrupted; stopping the subprocesses", file=sys.stderr)
            return 130
        finally:
            children.stop_all()
    print_targets(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
