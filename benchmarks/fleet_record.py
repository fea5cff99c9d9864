"""What a fleet benchmark worker records: every request's start, latency and outcome, every
schedule lag, the holds of long polls and remarks (refused reports, answers without `held`),
answered per measurement window on the main process's command (`fleet_nodes.py`)."""

from __future__ import annotations

from array import array
from collections import Counter
from typing import Any

STATUS, UPDATE = "/node-status", "/node-update"
ROUTES = (STATUS, UPDATE)
MAX_NOTES = 20_000  # failures and remarks kept, so a failing fleet cannot eat the memory


class Recorder:
    """Per-request samples (monotonic end, latency, ok), per-cycle schedule lag, the seconds
    each long poll was held, and counted remarks. A request counts in the window it ENDED in:
    counted by start, the polls still held at a window's end (a hold's share of it) would be
    missing from its rate."""

    def __init__(self) -> None:
        self.ends: dict[str, array[float]] = {r: array("d") for r in ROUTES}
        self.latencies: dict[str, array[float]] = {r: array("d") for r in ROUTES}
        self.failed: dict[str, array[float]] = {r: array("d") for r in ROUTES}
        self.notes: list[tuple[float, str]] = []  # failures
        self.remarks: list[tuple[float, str]] = []  # not failures: what the answers said
        self.lag_times: array[float] = array("d")
        self.lags: array[float] = array("d")
        self.held_times: array[float] = array("d")
        self.helds: array[float] = array("d")
        self.gc_times: array[float] = array("d")
        self.gc_pauses: array[float] = array("d")

    def request(self, route: str, end: float, latency: float, failure: str | None) -> None:
        if failure is None:
            self.ends[route].append(end)
            self.latencies[route].append(latency)
        else:
            self.failed[route].append(end)
            if len(self.notes) < MAX_NOTES:
                self.notes.append((end, failure))

    def remark(self, at: float, text: str) -> None:
        if len(self.remarks) < MAX_NOTES:
            self.remarks.append((at, text))

    def lag(self, at: float, late: float) -> None:
        self.lag_times.append(at)
        self.lags.append(late)

    def held(self, at: float, seconds: float) -> None:
        self.held_times.append(at)
        self.helds.append(seconds)

    def gc_pause(self, at: float, seconds: float) -> None:
        self.gc_times.append(at)
        self.gc_pauses.append(seconds)

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """Samples taken in [t0, t1)."""

        def inside(times: array[float], values: array[float]) -> list[float]:
            return [v for t, v in zip(times, values, strict=True) if t0 <= t < t1]

        return {
            "latency": {r: inside(self.ends[r], self.latencies[r]) for r in ROUTES},
            "failed": {r: sum(1 for t in self.failed[r] if t0 <= t < t1) for r in ROUTES},
            "notes": Counter(note for t, note in self.notes if t0 <= t < t1),
            "remarks": Counter(text for t, text in self.remarks if t0 <= t < t1),
            "lag": inside(self.lag_times, self.lags),
            "held": inside(self.held_times, self.helds),
            "gc": inside(self.gc_times, self.gc_pauses),
        }
