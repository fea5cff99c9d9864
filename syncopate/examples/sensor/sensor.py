"""Read the machine's load every 5 seconds and remember the peak, with nothing but the stdlib.

Persistent variables are only a JSON object in the file named by $SYNCOPATE_VARIABLES, so a
project in any language can keep them: read the file at start, write a temporary file and
rename it over the old one (a reader then never sees half a file).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

INTERVAL = 5.0


class Stop(Exception):
    """SIGTERM arrived: the node is stopping this project."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def load(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def save(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def available_mb() -> float | None:
    """MemAvailable from /proc/meminfo (Linux); None elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    path = Path(os.environ.get("SYNCOPATE_VARIABLES") or "project.variables")
    node = os.environ.get("SYNCOPATE_NODE") or "this machine"
    state = load(path)
    samples = int(state.get("samples", 0))
    peak = state.get("peak") if isinstance(state.get("peak"), dict) else None
    try:
        while True:
            load1 = round(os.getloadavg()[0], 2)
            samples += 1
            if peak is None or load1 > float(peak.get("load", 0.0)):
                peak = {"load": load1, "node": node, "at": time.strftime("%Y-%m-%d %H:%M:%S")}
            save(path, {**state, "samples": samples, "last": load1, "peak": peak})
            memory = available_mb()
            free = f", {memory:.0f} MB available" if memory is not None else ""
            print(
                f"load {load1:.2f} on {node}{free} (peak {peak['load']:.2f} on {peak['node']})",
                flush=True,
            )
            time.sleep(INTERVAL)
    except (Stop, KeyboardInterrupt):
        print(f"sensor: stopped after {samples} samples", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
