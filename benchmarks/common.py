"""Helpers the benchmarks share: percentiles, verdicts, the version line, SIGTERM handling,
and a manager started as a subprocess."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LISTENING = re.compile(r"Syncopate manager listening on (https?://\S+)")


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


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass
class Manager:
    proc: subprocess.Popen[bytes]
    url: str
    token: str


def start_manager(
    start: Callable[[list[str], Path], subprocess.Popen[bytes]],
    folder: Path,
    password: str,
    *extra: str,
    host: str = "127.0.0.1",
) -> Manager:
    """`syncopate manager serve` on a free port, data in `folder/data`, output in
    `folder/manager.log`; `start(argv, log_file)` runs it (so the caller can end it)."""
    data_dir = folder / "data"
    folder.mkdir(parents=True)
    log_file = folder / "manager.log"
    command = [
        *(sys.executable, "-m", "syncopate", "manager", "serve", "--host", host, "--port", "0"),
        *("--data-dir", str(data_dir), "--password", password, "--log-level", "warning"),
        *extra,
    ]
    proc = start(command, log_file)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        found = LISTENING.search(log_file.read_text(errors="replace"))
        if found:
            token = json.loads((data_dir / "controller.json").read_text())["token"]
            return Manager(proc, found.group(1).rstrip("/"), token)
        time.sleep(0.05)  # polling a starting process's log, with a deadline
    raise RuntimeError(f"the manager did not start; its output:\n{log_file.read_text()[-2000:]}")
