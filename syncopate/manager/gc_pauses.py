"""The garbage collector's pauses in the manager: measured, and kept rare.

A manager holding thousands of long polls keeps many objects alive for seconds (each poll's
request, task and frames), so they reach the collector's oldest generation, and CPython then
runs full collections every few seconds, each walking every object on the heap: pauses of
100–300 ms at 5,000 held polls, during which no request is answered (issue 18). So:

- `gc.freeze()` once the records are loaded: they live as long as the manager and are never
  walked again;
- a larger first threshold, so young collections come less often and fewer short-lived
  objects are promoted (measured at 10,000 held polls: no full collection in 14 s, where
  CPython's default threshold gave ten of ~660 ms; the young ones still take ~230 ms each,
  walking the live held requests);
- every pause timed by generation, for /metrics (`syncopate_gc_pause_seconds`).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

# Allocations minus deallocations before a young collection (CPython's default is 700).
YOUNG_THRESHOLD = 50_000


@dataclass
class GcPauses:
    """Count, total and longest pause of each generation's collections since start."""

    count: list[int] = field(default_factory=lambda: [0, 0, 0])
    total: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    longest: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    _began: float = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
            return
        took = time.perf_counter() - self._began
        generation = int(info.get("generation", 2))
        self.count[generation] += 1
        self.total[generation] += took
        self.longest[generation] = max(self.longest[generation], took)

    def gauges(self) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
        """The pauses as /metrics gauges, by generation."""
        return {
            "syncopate_gc_collections": {
                (("generation", str(g)),): float(n) for g, n in enumerate(self.count)
            },
            "syncopate_gc_pause_seconds_total": {
                (("generation", str(g)),): t for g, t in enumerate(self.total)
            },
            "syncopate_gc_pause_seconds_max": {
                (("generation", str(g)),): t for g, t in enumerate(self.longest)
            },
        }


def settle_heap(pauses: GcPauses) -> None:
    """Freeze what is loaded, raise the young threshold and time every pause from now on."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    if pauses not in gc.callbacks:
        gc.callbacks.append(pauses)


def stop_timing(pauses: GcPauses) -> None:
    """Stop timing pauses (the manager stopped; tests start many in one process)."""
    if pauses in gc.callbacks:
        gc.callbacks.remove(pauses)
