"""What an earlier agent left running: the records of what the agent started, and its marker.

After the agent itself crashed or restarted, `end_leftover(record_dir, name)` ends the process a
record names (checking it is the same process, not a reused pid), so a project never runs twice
on one node.

A record is written just after a start, so an agent killed between the two would leave an
unrecorded process. Every process the agent starts therefore also carries a marker in its
environment (`SYNCOPATE_AGENT_HOME`, the agent's data dir), which its children inherit;
`end_marked(home)` finds them all through `/proc/PID/environ` whatever instant the agent died at.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from syncopate.node.backoff import delays
from syncopate.node.groups import KILL_WAIT, POLLING, group_members, signal_group
from syncopate.variables import atomic_write

_logger = logging.getLogger(__name__)


def record_path(record_dir: Path, name: str) -> Path:
    """Where the record of project `name`'s running process is kept."""
    return record_dir / f"{name}.json"


def write_record(record_dir: Path, name: str, pid: int, command: str) -> None:
    """Record that project `name` runs as `pid` (the leader of its own group), for the next
    agent if this one crashes. Raises OSError (a full disk) or psutil.Error (it exited)."""
    record = {"pid": pid, "pgid": pid, **process_identity(pid), "command": command}
    record_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(record_path(record_dir, name), json.dumps(record) + "\n")


def remove_record(record_dir: Path, name: str) -> None:
    with contextlib.suppress(OSError):
        record_path(record_dir, name).unlink(missing_ok=True)


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return None


def process_identity(pid: int) -> dict[str, Any]:
    """What tells this process apart from a later one that reuses its pid.

    `create_time` is wall-clock based: it moves when the clock is set, as on a Raspberry Pi
    without a clock battery once NTP syncs. `since_boot` (with `boot_id`) does not.
    """
    boot_time = psutil.boot_time()
    create_time = float(psutil.Process(pid).create_time())
    since_boot = round(create_time - boot_time, 2)
    return {"create_time": create_time, "since_boot": since_boot, "boot_id": _boot_id()}


def _age_against(record: dict[str, Any], now: dict[str, Any]) -> tuple[float, float] | None:
    """How much later `now` was created than the record's process, with the slack to allow.

    None when they are of different boots: a reboot ended everything a record names.
    """
    recorded_boot, boot = record.get("boot_id"), now["boot_id"]
    if recorded_boot and boot and recorded_boot != boot:
        return None
    since = record.get("since_boot")
    if recorded_boot and recorded_boot == boot and isinstance(since, int | float):
        return now["since_boot"] - since, 0.05  # clock ticks since boot: exact
    # A second of slack: the boot time the wall-clock value derives from moves with the clock.
    return now["create_time"] - float(record["create_time"]), 1.0


def _leftovers(record: dict[str, Any]) -> tuple[list[psutil.Process], bool]:
    """The live processes a record names, and whether its whole group may be signalled."""
    pid, pgid = record["pid"], record["pgid"]
    try:
        leader = psutil.Process(pid)
        age = _age_against(record, process_identity(pid))
    except psutil.NoSuchProcess:
        leader, age = None, None
    if leader is not None:
        if age is None or abs(age[0]) >= age[1]:
            return [], False  # the pid now belongs to another process: never touch it
        with contextlib.suppress(ProcessLookupError):
            others = [p for p in group_members(pgid) if p.pid != pid]
            return [leader, *others], os.getpgid(pid) == pgid
        return [leader], False
    # The leader is gone but its children may live on in its group. A pid is not reused while a
    # group bears its number; still, only members younger than the leader are taken.
    members = []
    for proc in group_members(pgid):
        with contextlib.suppress(psutil.Error):
            age = _age_against(record, process_identity(proc.pid))
            if age is not None and age[0] > -age[1]:
                members.append(proc)
    return members, False


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        record = None
    if (
        isinstance(record, dict)
        and all(type(record.get(key)) is int and record[key] > 1 for key in ("pid", "pgid"))
        and isinstance(record.get("create_time"), int | float)
        and record["pgid"] != os.getpgrp()  # never the agent's own group
    ):
        return record
    _logger.warning("ignoring a process record that is not valid: %s", path)
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    return None


def end_leftover(record_dir: Path, name: str, grace: float = 3.0) -> bool:
    """End the process a record says project `name` had before the agent restarted.

    Only when the process at the recorded pid is the recorded one (same creation time, same
    boot): a reused pid is never signalled. SIGTERM to its group, SIGKILL after `grace`. The
    record is deleted in every case. True when something was ended. Blocks for up to `grace`
    plus a few seconds; async code calls it through `asyncio.to_thread`.
    """
    path = record_path(record_dir, name)
    record = _read_record(path)
    if record is None:
        return False
    try:
        targets, whole_group = _leftovers(record)
        if not targets:
            return False
        if not _end_processes(targets, {record["pgid"]} if whole_group else set(), grace):
            _logger.warning("project %s: leftover processes survived SIGKILL", name)
        return True
    finally:
        remove_record(record_dir, name)


def end_all_leftovers(record_dir: Path, home: Path | None = None, grace: float = 3.0) -> list[str]:
    """End what an earlier agent left running: every record in `record_dir`, then (when `home`
    is given) every process still carrying its marker. The names of the projects ended."""
    ended: list[str] = []
    if record_dir.is_dir():
        names = sorted(p.stem for p in record_dir.glob("*.json") if not p.name.startswith("."))
        ended = [name for name in names if end_leftover(record_dir, name, grace)]
    if home is not None:
        ended += [name for name in end_marked(home, grace) if name not in ended]
    return ended


MARKER = "SYNCOPATE_AGENT_HOME"


def marker_value(home: Path) -> str:
    """The marker a process started by the agent of data dir `home` carries."""
    return str(home.resolve())


def marked(home: Path) -> list[tuple[psutil.Process, str]]:
    """Live processes carrying the marker of the agent of `home`, with the project each is of
    ("" for a command-channel program)."""
    value, me, found = marker_value(home), os.getpid(), []
    for proc in psutil.process_iter():
        try:
            if proc.pid == me or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            env = proc.environ()
        except psutil.Error:
            continue  # gone, or another user's: not ours
        if env.get(MARKER) == value:
            found.append((proc, env.get("SYNCOPATE_PROJECT", "")))
    return found


def end_marked(home: Path, grace: float = 3.0) -> list[str]:
    """End every process that carries the marker of the agent of `home`, and their groups.

    SIGTERM, then SIGKILL after `grace`. Returns the projects they were of (sorted, once each).
    """
    found = marked(home)
    if not found:
        return []
    own_group = os.getpgrp()
    groups = set()
    for proc, _ in found:
        with contextlib.suppress(ProcessLookupError, psutil.Error):
            pgid = os.getpgid(proc.pid)
            if pgid not in (own_group, 0, 1):
                groups.add(pgid)
    if not _end_processes([proc for proc, _ in found], groups, grace):
        _logger.warning("processes left by an earlier agent survived SIGKILL")
    return sorted({name or "a command-channel program" for _, name in found})


def _end_processes(targets: list[psutil.Process], groups: set[int], grace: float) -> bool:
    """SIGTERM `targets` (and `groups`), SIGKILL after `grace`; True when all are gone.

    Blocks; async code calls it through `asyncio.to_thread`.
    """
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, KILL_WAIT)):
        for pgid in groups:
            signal_group(pgid, sig)
        for proc in targets:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(sig)
        deadline, intervals = time.monotonic() + wait, delays(POLLING)
        while any(_alive(proc) for proc in targets) and time.monotonic() < deadline:
            time.sleep(next(intervals))
        if not any(_alive(proc) for proc in targets):
            return True
    return False
