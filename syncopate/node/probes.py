"""Measurements the node reports: a project's disk use, the node's capacity and its metrics."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import psutil

MB = 1024 * 1024
"""Bytes in the megabyte every size is reported in."""


def dir_size_mb(path: Path) -> float:
    """Total size of the regular files under `path`, in MB; 0 when `path` is missing.

    Symbolic links inside are not followed (a link to a large file costs nothing), and files
    or directories that vanish during the walk are skipped. A `path` that is itself a regular
    file counts as that one file.
    """
    try:
        if path.is_file():
            return path.stat().st_size / MB
    except OSError:
        return 0.0
    total = 0
    pending = [os.fspath(path)]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    total += _entry_size(entry, pending)
        except OSError:
            continue  # vanished, unreadable, or not a directory: it holds nothing we can count
    return total / MB


def _entry_size(entry: os.DirEntry[str], pending: list[str]) -> int:
    """The size of `entry` if it is a regular file; a directory is queued for the walk."""
    try:
        if entry.is_dir(follow_symlinks=False):
            pending.append(entry.path)
        elif entry.is_file(follow_symlinks=False):
            return entry.stat(follow_symlinks=False).st_size
    except OSError:
        pass  # removed between listing and looking
    return 0


def capacity(data_dir: Path) -> tuple[float, float]:
    """(storage MB free on the filesystem holding `data_dir`, total RAM MB).

    A `data_dir` that does not exist yet is measured at its nearest existing parent.
    """
    where = data_dir.absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    free = shutil.disk_usage(where).free
    return free / MB, psutil.virtual_memory().total / MB


# Below this many free bytes a filesystem counts as full: a project writing its variables or
# its log would fail there.
FULL_BELOW = 64 * 1024


def full_disk_reason(path: Path) -> str:
    """A reason naming a full disk when the filesystem holding `path` is (nearly) full, else ""."""
    try:
        free = shutil.disk_usage(path).free
    except OSError:
        return ""
    if free >= FULL_BELOW:
        return ""
    return f"no space left on device: {free // 1024} KB free where {path} is"


THERMAL = Path("/sys/class/thermal")
"""Where Linux lists its thermal zones (a Raspberry Pi's SoC sensor is thermal_zone0)."""


def temperature(thermal: Path = THERMAL) -> float | None:
    """The hottest thermal zone under `thermal`, in °C; None where the machine has none.

    Each `thermal_zone*/temp` holds millidegrees; a zone that cannot be read (some report
    EINVAL or ENODATA while their sensor sleeps) or holds no number is skipped.
    """
    readings = []
    for zone in sorted(thermal.glob("thermal_zone*/temp")):
        try:
            readings.append(int(zone.read_text().strip()) / 1000)
        except (OSError, ValueError):
            continue
    return round(max(readings), 1) if readings else None


def load_average() -> float | None:
    """The one-minute load average; None where the system has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def node_metrics(thermal: Path = THERMAL) -> dict[str, Any]:
    """The `metrics` of a /node-status poll (DESIGN §3): `cpu` %, `load`, `temperature` °C
    (None where unknown) and `uptime` s.

    `cpu` is the system-wide use since the previous call (psutil keeps the last reading, so
    measuring costs no waiting); call it once at start-up, whose figure means nothing.
    """
    return {
        "cpu": round(psutil.cpu_percent(interval=None), 1),
        "load": load_average(),
        "temperature": temperature(thermal),
        "uptime": round(max(0.0, time.time() - psutil.boot_time())),
    }
