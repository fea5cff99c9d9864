"""The manager's collector settings and pause timing (gc_pauses.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence

import pytest

from syncopate.manager.gc_pauses import (
    YOUNG_THRESHOLD,
    GcPauses,
    collect_everything,
    settle_heap,
    stop_timing,
)


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the process's collector back as it was (the settings are process-wide)."""
    thresholds = gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_every_collection_is_timed_by_generation(collector: None) -> None:
    pauses = GcPauses()
    settle_heap(pauses)
    try:
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0  # what was loaded is never walked again
        before = list(pauses.count)
        gc.collect(0)
        gc.collect(2)
        assert pauses.count[0] == before[0] + 1
        assert pauses.count[2] == before[2] + 1
        assert pauses.total[2] > 0 and pauses.longest[2] > 0
    finally:
        stop_timing(pauses)
    counted = list(pauses.count)
    gc.collect()
    assert pauses.count == counted  # stopped: no longer called


def test_the_pauses_are_metrics_gauges() -> None:
    pauses = GcPauses(count=[3, 2, 1], total=[0.1, 0.2, 0.3], longest=[0.01, 0.02, 0.25])
    gauges = pauses.gauges()
    assert gauges["syncopate_gc_collections"][(("generation", "2"),)] == 1.0
    assert gauges["syncopate_gc_pause_seconds_total"][(("generation", "1"),)] == 0.2
    assert gauges["syncopate_gc_pause_seconds_max"][(("generation", "2"),)] == 0.25


def collectable(objects: Sequence[object]) -> set[int]:
    """The ids of those of `objects` in a generation the collector walks (not frozen)."""
    wanted = {id(o) for o in objects}
    return {id(o) for g in range(3) for o in gc.get_objects(g) if id(o) in wanted}


class Cyclic:
    """An object in a reference cycle with itself: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_survivors_of_a_young_collection_are_frozen_until_a_full_collection(
    collector: None,
) -> None:
    pauses = GcPauses()
    settle_heap(pauses)
    try:
        kept = [Cyclic() for _ in range(1000)]  # alive through the next young collection
        assert len(collectable(kept)) == 1000
        gc.collect(0)
        # In no generation the collector walks: frozen. (Not "the freeze count grew by 1000":
        # frozen objects that die meanwhile leave it, and a test process has others dying.)
        assert collectable(kept) == set()
        del kept  # now cyclic garbage, but frozen: a young collection does not see it
        assert gc.collect(0) < 1000
        # The full collection looks at the frozen objects too, frees the cycles, and freezes
        # what is left again.
        assert collect_everything() >= 1000
        assert gc.get_freeze_count() > 0
    finally:
        stop_timing(pauses)
    assert not pauses.freeze_survivors
    frozen = gc.get_freeze_count()
    kept = [Cyclic() for _ in range(1000)]
    gc.collect(0)
    # Stopped: survivors are no longer frozen (frozen objects may die meanwhile: at most).
    assert gc.get_freeze_count() < frozen + len(kept)
