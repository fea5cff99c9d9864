"""The cluster's time-dependent rules, driven by a clock the test controls.

The store is a real SQLite file in a temporary directory; only time is simulated.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncopate.manager import scheduler
from syncopate.manager.cluster import Cluster, ClusterSettings
from syncopate.manager.store import Store
from syncopate.project_protocol import AddProject
from syncopate.protocol import InitializeRequest, UpdateRequest
from syncopate.states import NodeStatus

TIMEOUT = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(tmp_path: Path, clock: Clock) -> Cluster:
    return Cluster(Store(tmp_path), ClusterSettings(node_timeout=TIMEOUT), clock=clock)


def join(cluster: Cluster, name: str) -> str:
    request = InitializeRequest.model_validate(
        {"preferred-name": name, "syncopate-password": "x", "storage": 1000, "ram": 1000}
    )
    return cluster.initialize(request, "127.0.0.1")[0]


def status_of(cluster: Cluster, node: str) -> NodeStatus:
    # A call, so mypy does not carry one assert's narrowing past the tick that changes it.
    return cluster.nodes[node].status


def report(cluster: Cluster, node: str, project: str, status: str = "running") -> None:
    record = cluster.projects[project]
    cluster.update(
        cluster.nodes[node],
        UpdateRequest.model_validate(
            {
                "name": node,
                "access-token": "unused",
                "project-name": project,
                "project-url": record.url,
                "status": status,
                "epoch": record.epoch,
            }
        ),
    )


def add(cluster: Cluster, name: str, exclusive: bool = False) -> None:
    cluster.add(AddProject(name=name, url=f"file:///srv/{name}.git", exclusive=exclusive))


def assert_views_fresh(cluster: Cluster) -> None:
    """The incrementally kept placement views equal views computed from scratch, and so do
    the indexes the monitor and placement keep beside them (cluster_state.py)."""
    state = cluster.state
    kept = sorted(state.views(), key=lambda v: v.name)
    state.stale_views.update(cluster.nodes)
    fresh = sorted(state.views(), key=lambda v: v.name)
    assert kept == fresh
    # The rank index: every schedulable node at its rank, with an entry in the heap.
    ranks = {v.name: scheduler.rank(v) for v in fresh if v.schedulable}
    assert state.ranks.ranks == ranks
    assert {(rank, name) for name, rank in ranks.items()} <= set(state.ranks.heap)
    # The contact order: every alive node, by last contact.
    alive = {n.name for n in cluster.nodes.values() if n.status is NodeStatus.ALIVE}
    order = [n for n in state.contact.names() if n in alive]
    assert set(order) == alive
    contacts = [cluster.nodes[n].last_contact for n in order]
    assert contacts == sorted(contacts)
    assert all(state.incoming.values()), "a target with no move in flight stays indexed"
    # Every alive node that takes no projects is where the monitor looks for drained ones.
    assert {n for n in alive if not cluster.nodes[n].schedulable} <= state.unschedulable


def test_node_is_dead_only_after_the_timeout(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    clock.now += TIMEOUT - 0.1
    cluster.tick()
    assert status_of(cluster, "a") is NodeStatus.ALIVE
    clock.now += 0.2
    cluster.tick()
    assert status_of(cluster, "a") is NodeStatus.DEAD


def test_exclusive_project_waits_for_the_stop_while_its_node_is_alive(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    add(cluster, "device", exclusive=True)
    add(cluster, "plain")
    report(cluster, "a", "device")
    report(cluster, "a", "plain")
    join(cluster, "b")
    cluster.drain("a")
    assert cluster.projects["device"].moving_to == "b"
    # a keeps polling but never confirms the stops.
    for _ in range(3):
        clock.now += TIMEOUT * 0.6
        cluster.touch(cluster.nodes["a"])
        cluster.touch(cluster.nodes["b"])
        cluster.tick()
    # The plain project moved once the handoff was overdue; the exclusive one never runs twice.
    assert cluster.projects["plain"].node == "b"
    assert cluster.projects["device"].node == "a"
    # When a stops answering, the exclusive project moves after node-timeout.
    clock.now += TIMEOUT + 0.1
    cluster.touch(cluster.nodes["b"])
    cluster.tick()
    assert cluster.projects["device"].node == "b"
    assert_views_fresh(cluster)


def test_restarted_manager_grants_a_full_timeout(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    add(cluster, "p")
    report(cluster, "a", "p")
    cluster.store.close()

    clock.now += 3600  # the manager was down for an hour
    restarted = make(tmp_path, clock)
    restarted.tick()
    assert status_of(restarted, "a") is NodeStatus.ALIVE
    assert restarted.projects["p"].node == "a"
    clock.now += TIMEOUT + 0.1
    restarted.tick()
    assert status_of(restarted, "a") is NodeStatus.DEAD
    assert restarted.projects["p"].node is None
    assert restarted.projects["p"].status.value == "lost"
    assert "died" in restarted.projects["p"].reason


def test_no_balance_during_the_grace_period(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    for i in range(4):
        add(cluster, f"p{i}")
        report(cluster, "a", f"p{i}")
    cluster.store.close()
    restarted = make(tmp_path, clock)
    join(restarted, "b")
    restarted.tick()
    assert all(p.moving_to is None for p in restarted.projects.values())
    # Calm balance (DESIGN section 12): b, alive for one node-timeout, is still too young.
    clock.now += TIMEOUT
    touch_all(restarted)
    restarted.tick()
    assert all(p.moving_to is None for p in restarted.projects.values())
    clock.now += TIMEOUT
    touch_all(restarted)
    restarted.tick()
    # Then one move at a time: the next begins once the first has landed.
    for landed in (1, 2):
        moving = [p.name for p in restarted.projects.values() if p.moving_to == "b"]
        assert len(moving) == 1
        assert_views_fresh(restarted)
        report(restarted, "a", moving[0], status="stopped")
        assert sum(p.node == "b" for p in restarted.projects.values()) == landed
        restarted.tick()
    assert sum(p.node == "b" for p in restarted.projects.values()) == 2
    assert all(p.moving_to is None for p in restarted.projects.values())
    assert_views_fresh(restarted)


def touch_all(cluster: Cluster) -> None:
    for node in cluster.nodes.values():
        cluster.touch(node)


def test_epoch_grows_on_every_assignment_and_reset(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    add(cluster, "p")
    assert cluster.projects["p"].epoch == 1
    cluster.reset(["p"])
    assert cluster.projects["p"].epoch == 2
    join(cluster, "b")
    clock.now += TIMEOUT + 1
    cluster.touch(cluster.nodes["b"])
    cluster.tick()
    assert cluster.projects["p"].node == "b"
    assert cluster.projects["p"].epoch == 3
    assert_views_fresh(cluster)


def test_many_nodes_silent_at_once_are_declared_together(tmp_path: Path) -> None:
    """A power strip fails: no project is moved onto a node that dies in the same tick."""
    clock = Clock()
    cluster = make(tmp_path, clock)
    for i in range(40):
        join(cluster, f"n{i:02}")
    for i in range(80):
        add(cluster, f"p{i:02}")
    epochs = {name: p.epoch for name, p in cluster.projects.items()}
    clock.now += TIMEOUT / 2
    for i in range(30, 40):  # ten nodes keep polling
        cluster.touch(cluster.nodes[f"n{i:02}"])
    clock.now += TIMEOUT / 2 + 0.1
    cluster.tick()
    dead = {n.name for n in cluster.nodes.values() if n.status is NodeStatus.DEAD}
    assert len(dead) == 30
    for name, project in cluster.projects.items():
        assert project.node not in dead
        assert project.node is not None
        # Each orphan moved once, straight to a survivor; the others did not move at all.
        assert project.epoch - epochs[name] in (0, 1)
    survivors = [len(cluster.state.on_node[f"n{i:02}"]) for i in range(30, 40)]
    assert sum(survivors) == 80 and max(survivors) - min(survivors) <= 1
    assert_views_fresh(cluster)


@pytest.mark.parametrize("node_timeout", [1.0, 3.0, 15.0, 60.0])
def test_a_held_poll_leaves_the_node_half_its_lease(node_timeout: float) -> None:
    # The node stops its exclusive projects when no poll of its has been answered for the
    # lease, counting from when each left: a hold must leave it room for the round trip and
    # a busy moment, and the lease must still end before the manager's node-timeout.
    settings = ClusterSettings(node_timeout=node_timeout)
    assert settings.longest_hold <= settings.lease / 2
    assert settings.lease < settings.node_timeout


def test_a_tick_recomputes_the_views_reports_made_stale(tmp_path: Path) -> None:
    """A placement then finds the views fresh: it pays for the reports since the last tick,
    not for every node whose usage changed since the last placement."""
    clock = Clock()
    cluster = make(tmp_path, clock)
    for name in ("a", "b", "c"):
        join(cluster, name)
    add(cluster, "p")
    report(cluster, cluster.projects["p"].node or "", "p")
    cluster.projects["p"].ram_usage = 300.0  # as a report with new usage leaves it
    cluster.state.stale_views.update(cluster.nodes)
    cluster.tick()
    assert not cluster.state.stale_views
    node = cluster.projects["p"].node
    assert cluster.state.view_cache[node or ""].ram_used == 300.0
    assert_views_fresh(cluster)
