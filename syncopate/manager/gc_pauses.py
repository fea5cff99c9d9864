"""The garbage collector's pauses in the manager: measured, and kept rare.

A manager holding thousands of long polls keeps many objects alive for seconds (each poll's
request, task and frames), so they reach the collector's oldest generation, and CPython then
runs full collections every few seconds, each walking every object on the heap: pauses of
100–300 ms at 5,000 held polls, during which no request is answered (issue 18). So:

- `gc.freeze()` once the records are loaded: they live as long as the manager and are never
  walked again;
- a larger first threshold, so young collections come less often and fewer short-lived
  objects are promoted (measured at 10,000 held polls: no full collection in 14 s, where
  CPython's default threshold gave ten of ~660 ms; the young ones still took ~230 ms each,
  walking the live held requests, until their survivors were frozen too: next point);
- the survivors of every young collection frozen too (`freeze_survivors`): a held poll's
  objects outlive a young collection, and then the middle generation's collection (every
  tenth) walked all 10,000 held requests: one of 608 ms in a 14 s window of the fleet
  benchmark, about its p99 (issue 18). Frozen, they are walked no more, and they are still
  freed when they die (by reference count: a held poll leaves no cycles). Cyclic garbage
  frozen with them would stay, so every `FULL_EVERY` seconds the manager runs one full
  collection over everything (`collect_everything`, once in ten minutes);
- every pause timed by generation, for /metrics (`syncopate_gc_pause_seconds`), and the
  objects each found unreachable (`syncopate_gc_collected`).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, field
from typing import Any

# Allocations minus deallocations before a young collection (CPython's default is 700).
YOUNG_THRESHOLD = 50_000
# Seconds between the times the frozen survivors go back to be looked at by a full collection.
FULL_EVERY = 600.0


@dataclass
class GcPauses:
    """Count, total and longest pause of each generation's collections since start."""

    count: list[int] = field(default_factory=lambda: [0, 0, 0])
    total: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    longest: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    collected: list[int] = field(default_factory=lambda: [0, 0, 0])
    freeze_survivors: bool = False
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
        self.collected[generation] += int(info.get("collected", 0))
        if self.freeze_survivors:
            gc.freeze()  # the collection has just ended: what is left is alive

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
            "syncopate_gc_collected": {
                (("generation", str(g)),): float(n) for g, n in enumerate(self.collected)
            },
        }


def settle_heap(pauses: GcPauses) -> None:
    """Freeze what is loaded, raise the young threshold, freeze the survivors of young
    collections and time every pause from now on."""
    gc.collect()
    gc.freeze()
    pauses.freeze_survivors = True
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
    if pauses not in gc.callbacks:
        gc.callbacks.append(pauses)


def collect_everything() -> int:
    """One full collection over every object, the frozen ones too (cyclic garbage that was
    frozen is freed), then freeze what is left again; the number of objects found unreachable."""
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found


def stop_timing(pauses: GcPauses) -> None:
    """Stop timing pauses and freezing (the manager stopped; tests start many in one
    process)."""
    pauses.freeze_survivors = False
    if pauses in gc.callbacks:
        gc.callbacks.remove(pauses)
