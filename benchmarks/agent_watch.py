"""How the agent benchmark watches a supervisor (the agent, or supervisord) from outside: its
children, which of them runs a project (by the marker in its command line), the time from a
SIGKILL to the project's next process, and one process's CPU and memory (psutil)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from harness.stats import MB, cpu_seconds

POLL = 0.002  # seconds between two looks at a parent's children
GAP = 0.3  # seconds between two crashes of different projects


# --- finding a project's process among a parent's children ---
def child_pids(parent: psutil.Process) -> set[int]:
    with contextlib.suppress(psutil.Error):
        return {child.pid for child in parent.children()}
    return set()


def cmdline_words(pid: int) -> list[str] | None:
    try:
        return " ".join(psutil.Process(pid).cmdline()).split()
    except psutil.Error:
        return None


def runs_marker(pid: int, marker: str, parent_cmdline: list[str], timeout: float = 2.0) -> bool:
    """Whether this child runs the project named `marker`.

    Between fork and exec a child still shows its parent's command line, and during the exec
    an empty one: wait for the exec then. Anything else (a git process of the agent, say) is
    not the project.
    """
    deadline = time.monotonic() + timeout
    while True:
        words = cmdline_words(pid)
        if words is None:
            return False
        if marker in words:
            return True
        if words not in ([], parent_cmdline) or time.monotonic() > deadline:
            return False
        time.sleep(0.0005)


@dataclass
class Parent:
    """A supervising process (an agent, supervisord) and what it runs."""

    process: psutil.Process
    cmdline: list[str]

    @classmethod
    def of(cls, pid: int) -> Parent:
        process = psutil.Process(pid)
        return cls(process, " ".join(process.cmdline()).split())

    def children(self) -> set[int]:
        return child_pids(self.process)

    def find(self, marker: str) -> int | None:
        for pid in sorted(self.children()):
            if runs_marker(pid, marker, self.cmdline, timeout=0.0):
                return pid
        return None

    def new_child(self, marker: str, known: set[int], deadline: float) -> tuple[int, float] | None:
        """Look every POLL s for a new child that runs `marker`: (pid, perf_counter seen)."""
        known = set(known)
        while time.perf_counter() < deadline:
            pids = self.children()
            seen = time.perf_counter()
            for pid in sorted(pids - known):
                if runs_marker(pid, marker, self.cmdline):
                    return pid, seen
                known.add(pid)
            time.sleep(POLL)
        return None


def scan_cost(parent: Parent) -> float:
    """Seconds one look at the children takes (the detection resolution is POLL + this)."""
    started = time.perf_counter()
    for _ in range(50):
        parent.children()
    return (time.perf_counter() - started) / 50


# --- measurements ---
@dataclass
class Usage:
    seconds: float
    cpu_percent: float  # of one core
    rss_max: float  # MB
    rss_last: float
    uss: float
    threads: int

    def line(self) -> str:
        return (
            f"RSS {self.rss_last:.1f} MB (max {self.rss_max:.1f}), USS {self.uss:.1f} MB, "
            f"CPU {self.cpu_percent:.2f}% of one core over {self.seconds:.0f} s, "
            f"{self.threads} threads"
        )


def measure_usage(pid: int, seconds: float) -> Usage:
    """CPU (delta / wall) and RSS (sampled each second) of one process only."""
    process = psutil.Process(pid)
    t0, cpu0 = time.perf_counter(), cpu_seconds(pid)
    rss: list[int] = []
    while (left := seconds - (time.perf_counter() - t0)) > 0:
        rss.append(process.memory_info().rss)
        time.sleep(min(1.0, left))
    t1, cpu1 = time.perf_counter(), cpu_seconds(pid)
    rss.append(process.memory_info().rss)
    return Usage(
        seconds=t1 - t0,
        cpu_percent=100 * (cpu1 - cpu0) / (t1 - t0),
        rss_max=max(rss) / MB,
        rss_last=rss[-1] / MB,
        uss=process.memory_full_info().uss / MB,
        threads=process.num_threads(),
    )


def memory_map_summary(pid: int, top: int = 5) -> str:
    """Anonymous memory (Python objects) and the largest mapped files (libraries), by RSS."""
    try:
        maps = psutil.Process(pid).memory_maps()
    except (psutil.Error, OSError) as error:
        return f"unknown ({error})"
    anonymous = sum(m.rss for m in maps if not m.path.startswith("/")) / MB
    files = sorted((m for m in maps if m.path.startswith("/")), key=lambda m: -m.rss)
    named = ", ".join(f"{Path(m.path).name.split('.')[0]} {m.rss / MB:.1f}" for m in files[:top])
    return f"anonymous {anonymous:.1f} MB; files {named} MB"


@dataclass
class Crashes:
    """Kill a parent's projects with SIGKILL; time until each one's new process exists."""

    parent: Parent
    pids: dict[str, int]
    started: dict[str, float]  # time.time() when each current run began
    latencies: list[float] = field(default_factory=list)
    missed: int = 0

    @classmethod
    def of(cls, parent: Parent, markers: list[str]) -> Crashes:
        pids: dict[str, int] = {}
        started: dict[str, float] = {}
        for marker in markers:
            pid = parent.find(marker)
            if pid is None:
                raise RuntimeError(f"{marker} is not running under pid {parent.process.pid}")
            pids[marker], started[marker] = pid, psutil.Process(pid).create_time()
        return cls(parent, pids, started)

    def crash(self, marker: str, timeout: float = 5.0) -> float | None:
        """SIGKILL the project's process; seconds until its next process exists."""
        known = self.parent.children() | {self.pids[marker]}
        t0 = time.perf_counter()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pids[marker], signal.SIGKILL)
        found = self.parent.new_child(marker, known, t0 + timeout)
        if found is None:
            self.missed += 1
            return None
        self.pids[marker], self.started[marker] = found[0], time.time()
        return found[1] - t0

    def series(self, rounds: int, stable_after: float) -> None:
        """Crash each project `rounds` times, each after a run of at least `stable_after` s."""
        for _ in range(rounds):
            for marker in self.pids:
                time.sleep(max(0.0, self.started[marker] + stable_after - time.time()))
                latency = self.crash(marker)
                if latency is not None:
                    self.latencies.append(latency)
                time.sleep(GAP)

    def back_to_back(self, marker: str, stable_after: float) -> tuple[float | None, float | None]:
        """After a stable run, crash a project, then its new process at once: both latencies."""
        time.sleep(max(0.0, self.started[marker] + stable_after - time.time()))
        first = self.crash(marker)
        return first, None if first is None else self.crash(marker)
