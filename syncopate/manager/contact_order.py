"""The alive nodes, least recently heard from first: the monitor finds the silent ones without
looking at every node.

A node's `last_contact` only grows (the monotonic clock, set by `Membership.touch` on each of
its requests), so moving a node to the end whenever it is heard from keeps the order sorted by
last contact; the silent nodes are then a prefix, and a tick looks only until the first node
that is not silent: O(1) when nobody is, at 10,000 nodes as at 10.

The invariant kept: every ALIVE node is in the order, at its place by `last_contact`. Nodes
that are not ALIVE (dead, left, forgotten, a refused join) may still be in it: they are dropped
when a tick meets them at the front (a dead node is silent, so it drifts there), never in the
middle of a write, so a refused write that puts a node back as ALIVE finds it still in place.
The one way back to ALIVE besides that is speaking again, which moves it to the end.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from syncopate.manager.records import NodeRecord
from syncopate.states import NodeStatus


class ContactOrder:
    """Node names in the order they were last heard from, oldest first."""

    __slots__ = ("_order",)

    def __init__(self) -> None:
        self._order: OrderedDict[str, None] = OrderedDict()

    def heard(self, name: str) -> None:
        """The node was heard from now (its `last_contact` is the latest of all)."""
        self._order[name] = None
        self._order.move_to_end(name)

    def rebuild(self, nodes: Mapping[str, NodeRecord]) -> None:
        """The order from scratch: the ALIVE nodes by last contact (at start, after an undo)."""
        alive = [n for n in nodes.values() if n.status is NodeStatus.ALIVE]
        alive.sort(key=lambda n: n.last_contact)  # stable: equal times keep the nodes' order
        self._order = OrderedDict((n.name, None) for n in alive)

    def restored(self, records: Iterable[NodeRecord], nodes: Mapping[str, NodeRecord]) -> None:
        """A refused write put these node records back: one ALIVE again but out of the order
        (not expected: see the module's docstring) makes the order be rebuilt."""
        for node in records:
            alive = node.status is NodeStatus.ALIVE and nodes.get(node.name) is node
            if alive and node.name not in self._order:
                self.rebuild(nodes)
                return

    def silent(
        self, nodes: Mapping[str, NodeRecord], now: float, timeout: float
    ) -> list[NodeRecord]:
        """The ALIVE nodes not heard from for over `timeout` seconds, oldest first.

        Drops the nodes no longer ALIVE that it passes on the way (they are not silent, they
        are gone); the silent ones stay until they are declared dead, which may be refused.
        """
        silent: list[NodeRecord] = []
        gone: list[str] = []
        for name in self._order:
            node = nodes.get(name)
            if node is None or node.status is not NodeStatus.ALIVE:
                gone.append(name)
            elif now - node.last_contact > timeout:
                silent.append(node)
            else:
                break  # heard from since: so was every node after it
        for name in gone:
            del self._order[name]
        return silent

    def names(self) -> list[str]:
        """The names in order (for tests)."""
        return list(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._order

    def __len__(self) -> int:
        return len(self._order)
