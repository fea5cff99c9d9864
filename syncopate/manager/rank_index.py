"""The schedulable nodes in placement order, kept as their views change: one placement without
a scan of every node.

`scheduler.place` takes, among the schedulable nodes that fit a project, the one first in
`scheduler.rank` order (least disk in use, fewest projects, name), after a scan of them all:
tens of milliseconds at 10,000 nodes, for every add. `RankIndex` keeps each schedulable node's
rank and a heap of (rank, name) entries; a view whose rank changed pushes a fresh entry and
the old one goes stale (it no longer matches `ranks`), dropped when it surfaces or when the heap
is rebuilt at twice the nodes' number. `first_fit` walks the heap in rank order without taking
entries out, so it finds the same node as the scan, in O(k log k) for the k entries it passes
over. It gives up (the caller scans, which also says why nothing fits) after `LOOK` entries:
when no node fits, or only rare ones do (`--on` constraints that few nodes meet), a walk of
the whole heap would cost more than the scan.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from syncopate.manager import scheduler

Rank = tuple[float, int, str]
Entry = tuple[Rank, str]

LOOK = 256  # heap entries a walk passes over before it leaves the answer to the scan
SLACK = 64  # stale entries always tolerated before a rebuild (a small cluster never rebuilds)


class RankIndex:
    """Schedulable nodes by placement rank, for `first_fit`."""

    __slots__ = ("heap", "ranks")

    def __init__(self) -> None:
        self.ranks: dict[str, Rank] = {}  # schedulable node -> its rank now
        self.heap: list[Entry] = []  # (rank, name); an entry whose rank is not ranks' is stale

    def update(self, name: str, view: scheduler.NodeView | None) -> None:
        """Take a node's recomputed view (None: the node is gone)."""
        if view is None or not view.schedulable:
            if self.ranks.pop(name, None) is None:
                return
            # Its entries go stale.
        else:
            rank = scheduler.rank(view)
            if self.ranks.get(name) == rank:
                return  # a report that changed nothing placement sees
            self.ranks[name] = rank
            heapq.heappush(self.heap, (rank, name))
        if len(self.heap) > 2 * len(self.ranks) + SLACK:
            self._rebuild()

    def _rebuild(self) -> None:
        """The heap without its stale entries (amortised: it takes len(ranks) pushes, or half
        the nodes leaving, to need the next one)."""
        self.heap = [(rank, name) for name, rank in self.ranks.items()]
        heapq.heapify(self.heap)

    def first_fit(
        self,
        need: scheduler.ProjectNeed,
        views: Mapping[str, scheduler.NodeView],
        exclude: str | None = None,
    ) -> str | None:
        """The first node in rank order that fits `need` (but `exclude`), as `scheduler.place`
        chooses; None when none is found within `LOOK` entries (none fits, or only rare
        ones): the caller then asks `scheduler.place`."""
        heap, ranks = self.heap, self.ranks
        while heap and ranks.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)  # stale at the top: gone for good
        if not heap:
            return None
        # Best-first over the heap's tree: a parent ranks before its children, so entries
        # come out of `frontier` in rank order, and the heap itself is left as it is.
        frontier: list[tuple[Entry, int]] = [(heap[0], 0)]
        size = len(heap)
        looked = 0
        while frontier:
            entry, at = heapq.heappop(frontier)
            rank, name = entry
            current = ranks.get(name) == rank and name != exclude
            if current and scheduler.fits(need, views[name]):
                return name
            looked += 1
            if looked > LOOK:
                return None
            for child in (2 * at + 1, 2 * at + 2):
                if child < size:
                    heapq.heappush(frontier, (heap[child], child))
        return None
