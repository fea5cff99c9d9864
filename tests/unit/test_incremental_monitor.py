"""The monitor's indexes (contact_order.py, ClusterState.unschedulable) follow every path that
changes a node: heard from, declared dead, back, gone, forgotten, drained, a restart, and a
write the store refused. A clock the test controls, over a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncopate.errors import StoreFailed
from syncopate.manager.cluster import Cluster, ClusterSettings
from syncopate.states import NodeStatus
from tests.unit.test_cluster_timing import (
    TIMEOUT,
    Clock,
    add,
    assert_views_fresh,
    join,
    make,
    status_of,
)
from tests.unit.test_refused_writes import failing_store


def alive_order(cluster: Cluster) -> list[str]:
    """The contact order's alive nodes (it may still hold others, dropped lazily)."""
    alive = {n.name for n in cluster.nodes.values() if n.status is NodeStatus.ALIVE}
    return [n for n in cluster.state.contact.names() if n in alive]


def where(cluster: Cluster, project: str) -> str | None:
    """Where a project runs or goes (one not running yet moves at once)."""
    record = cluster.projects[project]
    return record.moving_to or record.node


def test_a_touch_moves_a_node_last_and_only_the_silent_die(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    for name in ("a", "b", "c"):
        join(cluster, name)
        clock.now += 1
    assert alive_order(cluster) == ["a", "b", "c"]
    cluster.touch(cluster.nodes["a"])
    assert alive_order(cluster) == ["b", "c", "a"]
    clock.now += TIMEOUT - 1.5  # b is silent for over the timeout; c and a are not
    cluster.tick()
    assert [status_of(cluster, n) for n in ("a", "b", "c")] == [
        NodeStatus.ALIVE,
        NodeStatus.DEAD,
        NodeStatus.ALIVE,
    ]
    cluster.tick()  # the dead node is dropped from the order when the tick meets it
    assert cluster.state.contact.names() == ["c", "a"]
    assert_views_fresh(cluster)


def test_a_dead_node_that_speaks_again_is_watched_again(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    join(cluster, "b")
    clock.now += TIMEOUT + 1
    cluster.touch(cluster.nodes["b"])
    cluster.tick()
    cluster.tick()
    assert status_of(cluster, "a") is NodeStatus.DEAD
    assert "a" not in cluster.state.contact
    cluster.touch(cluster.nodes["a"])
    assert status_of(cluster, "a") is NodeStatus.ALIVE
    assert alive_order(cluster) == ["b", "a"]
    clock.now += TIMEOUT + 1
    cluster.touch(cluster.nodes["b"])
    cluster.tick()
    assert status_of(cluster, "a") is NodeStatus.DEAD, "silent again: dead again"
    assert status_of(cluster, "b") is NodeStatus.ALIVE
    assert_views_fresh(cluster)


def test_a_node_that_left_or_was_forgotten_leaves_the_order(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    for name in ("a", "b", "c"):
        join(cluster, name)
    cluster.leave(cluster.nodes["b"])
    cluster.forget("b")
    clock.now += TIMEOUT + 1
    cluster.touch(cluster.nodes["c"])
    cluster.tick()
    assert status_of(cluster, "a") is NodeStatus.DEAD
    cluster.tick()
    assert cluster.state.contact.names() == ["c"]
    # A new node by the forgotten one's name is watched as any other.
    join(cluster, "b")
    assert alive_order(cluster) == ["c", "b"]
    clock.now += TIMEOUT + 1
    cluster.tick()
    assert status_of(cluster, "b") is NodeStatus.DEAD
    assert_views_fresh(cluster)


def test_a_restarted_manager_watches_every_alive_node(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    for name in ("a", "b", "c"):
        join(cluster, name)
    cluster.leave(cluster.nodes["c"])
    clock.now += 100
    restarted = make(tmp_path, clock)
    assert sorted(alive_order(restarted)) == ["a", "b"]
    restarted.touch(restarted.nodes["a"])
    clock.now += TIMEOUT + 0.1
    restarted.touch(restarted.nodes["a"])
    restarted.tick()
    assert status_of(restarted, "b") is NodeStatus.DEAD
    assert status_of(restarted, "a") is NodeStatus.ALIVE
    assert_views_fresh(restarted)


def test_a_refused_declaration_keeps_the_node_watched(tmp_path: Path) -> None:
    clock = Clock()
    store, disk = failing_store(tmp_path)
    cluster = Cluster(store, ClusterSettings(node_timeout=TIMEOUT), clock=clock)
    join(cluster, "a")
    join(cluster, "b")
    clock.now += TIMEOUT + 1
    cluster.touch(cluster.nodes["b"])
    disk.full = True
    for _ in range(2):
        cluster.tick()  # refused: a stays alive, and silent
        assert status_of(cluster, "a") is NodeStatus.ALIVE
        assert alive_order(cluster) == ["a", "b"]
        assert_views_fresh(cluster)
    disk.full = False
    cluster.tick()
    assert status_of(cluster, "a") is NodeStatus.DEAD


def test_a_refused_return_leaves_the_node_dead_and_a_later_one_counts(tmp_path: Path) -> None:
    clock = Clock()
    store, disk = failing_store(tmp_path)
    cluster = Cluster(store, ClusterSettings(node_timeout=TIMEOUT), clock=clock)
    join(cluster, "a")
    join(cluster, "b")
    clock.now += TIMEOUT + 1
    cluster.touch(cluster.nodes["b"])
    cluster.tick()
    cluster.tick()
    assert "a" not in cluster.state.contact
    disk.full = True
    with pytest.raises(StoreFailed):
        cluster.touch(cluster.nodes["a"])
    assert status_of(cluster, "a") is NodeStatus.DEAD
    assert_views_fresh(cluster)
    disk.full = False
    cluster.touch(cluster.nodes["a"])
    assert alive_order(cluster) == ["b", "a"]
    assert_views_fresh(cluster)


def test_an_undo_that_brings_back_a_dropped_node_rebuilds_the_order(tmp_path: Path) -> None:
    """Not a path the cluster takes today (nodes leave the order only between writes), but
    should one drop a node and then see its write refused, the order is made whole again."""
    clock = Clock()
    store, disk = failing_store(tmp_path)
    cluster = Cluster(store, ClusterSettings(node_timeout=TIMEOUT), clock=clock)
    join(cluster, "a")
    clock.now += 1
    join(cluster, "b")
    disk.full = True
    with pytest.raises(StoreFailed), cluster._write(durable=True):
        node = cluster.nodes["a"]
        cluster._set_node_status(node, NodeStatus.DEAD)
        cluster.state.contact.silent(cluster.nodes, clock.now, TIMEOUT)  # drops a
        assert "a" not in cluster.state.contact
        cluster.store.save_node(node)
    assert status_of(cluster, "a") is NodeStatus.ALIVE
    assert alive_order(cluster) == ["a", "b"]
    assert_views_fresh(cluster)


def test_drained_nodes_are_looked_at_without_a_scan(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    add(cluster, "p")
    join(cluster, "b")
    cluster.tick()
    assert cluster.state.alive_unschedulable() == []
    assert cluster.state.unschedulable == set(), "the tick drops the nodes that take projects"
    cluster.drain("a")
    assert [n.name for n in cluster.state.alive_unschedulable()] == ["a"]
    assert where(cluster, "p") == "b"
    # A drained node that dies and comes back is looked at again.
    clock.now += TIMEOUT + 1
    cluster.touch(cluster.nodes["b"])
    cluster.tick()
    assert status_of(cluster, "a") is NodeStatus.DEAD
    assert cluster.state.alive_unschedulable() == []
    cluster.touch(cluster.nodes["a"])
    assert [n.name for n in cluster.state.alive_unschedulable()] == ["a"]
    cluster.undrain("a")
    cluster.tick()
    assert cluster.state.unschedulable == set()
    assert_views_fresh(cluster)


def test_a_drained_node_whose_project_had_nowhere_to_go_moves_it_later(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    add(cluster, "p")
    cluster.drain("a")
    assert cluster.projects["p"].reason.startswith("waiting to leave drained node")
    cluster.tick()
    assert cluster.state.alive_unschedulable() == [cluster.nodes["a"]]
    join(cluster, "b")
    cluster.tick()
    assert where(cluster, "p") == "b"
    assert_views_fresh(cluster)


def test_an_undo_that_brings_back_a_dropped_drained_node_restores_it(tmp_path: Path) -> None:
    clock = Clock()
    store, disk = failing_store(tmp_path)
    cluster = Cluster(store, ClusterSettings(node_timeout=TIMEOUT), clock=clock)
    join(cluster, "a")
    cluster.drain("a")
    disk.full = True
    with pytest.raises(StoreFailed), cluster._write(durable=True):
        node = cluster.nodes["a"]
        cluster._set_node_status(node, NodeStatus.DEAD)
        assert cluster.state.alive_unschedulable() == []  # drops a
        cluster.store.save_node(node)
    assert [n.name for n in cluster.state.alive_unschedulable()] == ["a"]
    assert_views_fresh(cluster)
