"""Helpers the benchmarks share: percentiles, verdicts, the version line, SIGTERM handling."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values by nearest rank; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


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


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so cleanup runs as for Ctrl-C."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
