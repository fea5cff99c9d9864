"""The agent benchmark's comparison: supervisord running the same programs, its idle footprint
and crash -> new process, measured as the agent's are (agent_watch.py)."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

from agent_nodes import project_command
from agent_watch import Crashes, Parent, Usage, measure_usage
from harness import stats
from harness.procs import PY, Processes
from harness.stats import percentile


def ms(seconds: float) -> str:
    return stats.ms(seconds, digits=0)


def spread(values: list[float]) -> str:
    return stats.spread(values, "p50 max", width=0, digits=0)


def worst(values: list[float | None], missed: int = 0) -> float:
    if missed or not values or any(v is None for v in values):
        return float("inf")
    return max(v for v in values if v is not None)


def supervisor_version() -> str | None:
    try:
        importlib.import_module("supervisor")
    except ImportError:
        return None
    return importlib.metadata.version("supervisor")


def supervisord_config(folder: Path, programs: dict[str, Path]) -> Path:
    """One program per project (the same command, via /bin/sh -c), autorestart, startsecs=0."""
    sock = folder / "supervisor.sock"
    text = f"""\
[unix_http_server]
file={sock}
[supervisord]
nodaemon=true
logfile={folder / "supervisord.log"}
pidfile={folder / "supervisord.pid"}
childlogdir={folder}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{sock}
"""
    for name, directory in programs.items():
        text += f"""\
[program:{name}]
command=/bin/sh -c {shlex.quote(project_command(name))}
directory={directory}
autorestart=true
startsecs=0
startretries=1000000
redirect_stderr=true
stdout_logfile={folder / name}.log
"""
    path = folder / "supervisord.conf"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Comparison:
    version: str
    usage: Usage
    latencies: list[float]
    missed: int


def run_supervisord(
    procs: Processes, folder: Path, programs: dict[str, Path], args: argparse.Namespace
) -> Comparison | None:
    version = supervisor_version()
    if version is None:
        print(
            "  SKIPPED: supervisor is not installed; `pip install -e '.[bench]'` to compare "
            "(it is not a dependency of Syncopate)"
        )
        return None
    folder.mkdir(parents=True)
    conf = supervisord_config(folder, programs)
    proc = procs.start([PY, "-m", "supervisor.supervisord", "-c", str(conf)], folder / "out.log")
    parent = Parent.of(proc.pid)
    deadline = time.monotonic() + 30
    while any(parent.find(name) is None for name in programs):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"supervisord did not start its programs; see {folder}")
        time.sleep(0.1)
    print(f"  supervisord {version}, pid {proc.pid}: {len(programs)} programs running")
    time.sleep(args.settle)
    usage = measure_usage(proc.pid, args.busy_window)
    print(f"  idle with {len(programs)} programs: {usage.line()}")
    crashes = Crashes.of(parent, list(programs))
    # No backoff to forgive: a run of startsecs=0 or more is always a successful start.
    crashes.series(args.crash_rounds, stable_after=0.0)
    print(f"  crash -> new process: {spread(crashes.latencies)}; missed {crashes.missed}")
    procs.stop([proc])
    return Comparison(version, usage, crashes.latencies, crashes.missed)


def print_comparison(ours: Usage, crash: list[float], sv: Comparison) -> None:
    theirs = sv.usage
    rows = [
        ("RSS, 5 projects / programs", f"{ours.rss_max:.1f} MB", f"{theirs.rss_max:.1f} MB"),
        ("USS, same", f"{ours.uss:.1f} MB", f"{theirs.uss:.1f} MB"),
        ("CPU, same, % of one core", f"{ours.cpu_percent:.2f}%", f"{theirs.cpu_percent:.2f}%"),
        (
            "crash -> new process, p50",
            ms(percentile(crash, 0.5)),
            ms(percentile(sv.latencies, 0.5)),
        ),
        (
            "crash -> new process, max",
            ms(worst(list(crash))),
            ms(worst(list(sv.latencies))),
        ),
    ]
    print(f"\nside by side{'':27} {'syncopate agent':>16} {'supervisord ' + sv.version:>18}")
    for text, agent, supervisord in rows:
        print(f"  {text:37} {agent:>16} {supervisord:>18}")
    print(
        "  (the agent also clones, reports to a manager and probes RAM; its first restart "
        "waits the backoff's first delay on purpose)"
    )
