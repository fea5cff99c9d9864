"""Figures for the benchmarks: percentiles, a process's CPU and memory (psutil), and the
printed forms every benchmark shares (milliseconds, spreads, the header, the targets table)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import psutil

MB = 2**20


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values by nearest rank; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


def mb(n_bytes: float) -> str:
    return f"{n_bytes / MB:.0f} MB"


def spread(
    values: list[float], keys: str = "p50 p99 min max", width: int = 9, digits: int = 1
) -> str:
    """E.g. `p50 X  p99 Y  min Z  max W  (n=N)`, in milliseconds, the figures `keys` names."""
    if not values:
        return "no samples"
    figure = {
        "p50": lambda: percentile(values, 0.5),
        "p99": lambda: percentile(values, 0.99),
        "min": lambda: min(values),
        "max": lambda: max(values),
    }
    shown = (f"{key} {ms(figure[key](), digits):>{width}}" for key in keys.split())
    return "  ".join(shown) + f"  (n={len(values)})"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_targets(
    title: str, rows: list[tuple[str, str, bool]], width: int, value: int = 9
) -> None:
    """The targets table: what, the measured figure, PASS or FAIL."""
    print(title)
    for text, measured, ok in rows:
        print(f"  {text:{width}} measured {measured:>{value}}  {verdict(ok)}")


def syncopate_version() -> str:
    """The package version and, when run from a git checkout, its commit (code changes fast)."""
    import syncopate

    root = Path(syncopate.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{syncopate.__version__} ({commit})" if commit else syncopate.__version__


def print_header(what: str, *versions: str) -> None:
    """`Syncopate WHAT benchmark ...` and the machine line, `versions` appended to it."""
    print(f"Syncopate {what} benchmark (traffic on 127.0.0.1 only)")
    print(
        "; ".join(
            [f"  machine: {os.cpu_count()} CPUs", f"Python {sys.version.split()[0]}", *versions]
        )
    )


def cpu_seconds(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system) a process used so far, with its reaped children's if asked;
    nan when it is gone."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    total = times.user + times.system
    if children:
        total += times.children_user + times.children_system
    return float(total)


def rss(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).memory_info().rss)
    return 0


def uss(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).memory_full_info().uss)
    return 0
