"""A write the store refuses changes nothing: the undo, the store's error, the monitor's steps.

The end-to-end cases (every route, a real full disk) are in tests/integration/test_store_faults.py;
these drive the monitor's steps (failover, moves off a drained node, balance) with a clock the
test controls, over a real SQLite file whose COMMIT fails on demand.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import pytest

from syncopate.errors import (
    ConnectionFailed,
    Forbidden,
    StoreFailed,
    Unavailable,
    request_error_for,
)
from syncopate.manager.cluster import Cluster, ClusterSettings
from syncopate.manager.store import Store
from syncopate.manager.undo import Undo
from syncopate.states import NodeStatus
from tests.unit.test_cluster_timing import TIMEOUT, Clock, add, assert_views_fresh, join, report

FULL = "database or disk is full"


@dataclass(slots=True)
class Record:
    name: str
    tags: list[str] = field(default_factory=list)


def test_undo_puts_records_and_entries_back_and_drops_effects() -> None:
    a, b = Record("a", ["x"]), Record("b")
    table: dict[str, Record] = {"a": a}
    effects: list[str] = []
    undo = Undo()
    undo.keep(a)
    a.name, a.tags = "changed", ["y"]
    undo.keep(a)  # a second keep does not overwrite the first
    undo.keep_entry(table, "b")
    table["b"] = b
    undo.keep_entry(table, "a")
    del table["a"]
    undo.keep_entry(table, "b")
    table["b"] = a
    undo.later(effects.append, "announced")
    undo.restore()
    assert (a.name, a.tags) == ("a", ["x"])
    assert table == {"a": a}
    undo.run_effects()
    assert effects == []


def test_undo_runs_effects_in_order_once() -> None:
    effects: list[str] = []
    undo = Undo()
    undo.later(effects.append, "one")
    undo.later(effects.append, "two")
    undo.run_effects()
    undo.run_effects()
    assert effects == ["one", "two"]


def test_a_503_is_transient_for_every_client() -> None:
    error = request_error_for(503, f"database write failed: {FULL}")
    assert isinstance(error, Unavailable)
    # Callers retry what they retry for an unreachable manager; never "not yours".
    assert isinstance(error, ConnectionFailed)
    assert not isinstance(error, Forbidden)
    assert StoreFailed.status == 503


class FullDisk:
    """A connection whose COMMIT fails as on a full disk while `full` is set."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.full = False

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.full and sql == "COMMIT":
            raise sqlite3.OperationalError(FULL)
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


def failing_store(tmp_path: Path) -> tuple[Store, FullDisk]:
    store = Store(tmp_path)
    disk = FullDisk(store._sqlite)
    store._db = disk
    return store, disk


def test_the_store_rolls_back_and_names_the_cause(tmp_path: Path) -> None:
    store, disk = failing_store(tmp_path)
    disk.full = True
    with pytest.raises(StoreFailed, match=f"^database write failed: {FULL}$"):
        store.set_meta("k", "refused")
    with pytest.raises(StoreFailed, match="no such table"), store.transaction():
        store.set_meta("k", "refused too")
        store._db.execute("INSERT INTO nowhere VALUES (1)")
    disk.full = False
    assert not store._sqlite.in_transaction
    assert store.get_meta("k") is None
    store.set_meta("k", "kept")
    assert Store(tmp_path).get_meta("k") == "kept"


def state(cluster: Cluster) -> dict[str, Any]:
    """Every record's fields and the indexes derived from them."""

    def of(record: Any) -> dict[str, Any]:
        return {f.name: getattr(record, f.name) for f in fields(record)}

    return {
        "projects": {n: of(p) for n, p in cluster.projects.items()},
        "nodes": {n: of(x) for n, x in cluster.nodes.items()},
        "on-node": {n: sorted(s) for n, s in cluster.state.on_node.items() if s},
        "incoming": {n: sorted(s) for n, s in cluster.state.incoming.items() if s},
        "versions": dict(cluster.polls.versions),
    }


def stored(cluster: Cluster) -> dict[str, Any]:
    store = cluster.store
    return {
        "projects": {p.name: (p.node, p.moving_to, p.epoch) for p in store.load_projects()},
        "nodes": {n.name: n.status for n in store.load_nodes()},
    }


def in_memory(cluster: Cluster) -> dict[str, Any]:
    return {
        "projects": {p.name: (p.node, p.moving_to, p.epoch) for p in cluster.projects.values()},
        "nodes": {n.name: n.status for n in cluster.nodes.values()},
    }


def test_the_monitor_retries_a_refused_failover_and_balance(tmp_path: Path) -> None:
    clock = Clock()
    store, disk = failing_store(tmp_path)
    events: list[tuple[str, str]] = []
    cluster = Cluster(
        store,
        ClusterSettings(node_timeout=TIMEOUT),
        clock=clock,
        notify=lambda kind, name: events.append((kind, name)),
    )
    join(cluster, "a")
    for name in ("p1", "p2", "p3", "p4"):
        add(cluster, name)
        report(cluster, "a", name)
    clock.now += TIMEOUT  # past the grace period: balance may move projects
    join(cluster, "b")
    join(cluster, "c")
    # ... onto nodes alive for 2 x node-timeout (calm balance, DESIGN section 12).
    clock.now += 2 * TIMEOUT
    for node in list(cluster.nodes.values()):
        cluster.touch(node)

    # Balance: refused, nothing begins to move.
    disk.full = True
    before, events[:] = state(cluster), []
    cluster.tick()
    assert state(cluster) == before
    assert events == []
    disk.full = False
    cluster.tick()
    assert cluster.state.incoming, "balance did not begin a move once writes worked"
    assert in_memory(cluster) == stored(cluster)
    assert_views_fresh(cluster)
    for project in list(cluster.projects.values()):
        if project.moving_to:
            report(cluster, "a", project.name, "stopped")

    # A drained node's projects: the move off it is refused, then happens.
    disk.full = True
    with pytest.raises(StoreFailed):
        cluster.drain("a")
    assert not cluster.nodes["a"].drained
    disk.full = False
    cluster.drain("a")
    assert in_memory(cluster) == stored(cluster)

    # A dead node: the failover is refused while the disk is full, and done after.
    dying = max(("b", "c"), key=lambda n: len(cluster.state.on_node.get(n, ())))
    assert cluster.state.on_node[dying], "no project to fail over"
    clock.now += TIMEOUT + 1
    for name in ("a", "b", "c"):
        if name != dying:
            cluster.touch(cluster.nodes[name])
    disk.full = True
    before, events[:] = state(cluster), []
    for _ in range(3):
        cluster.tick()
        assert state(cluster) == before
        assert cluster.nodes[dying].status is NodeStatus.ALIVE
    assert events == []
    assert in_memory(cluster) == stored(cluster)
    disk.full = False
    cluster.tick()
    assert cluster.nodes[dying].status is NodeStatus.DEAD
    assert not cluster.state.on_node.get(dying)
    assert in_memory(cluster) == stored(cluster)
    assert_views_fresh(cluster)
