"""Every-node projects (DESIGN §12): the pure copy plan, and the cluster keeping copies right.

The cluster runs on a real SQLite store in a temporary directory, with a clock the test moves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syncopate import constraints
from syncopate.errors import Forbidden, InvalidRequest, StoreFailed
from syncopate.manager.cluster import Cluster, ClusterSettings
from syncopate.manager.every_node import plan
from syncopate.manager.records import NodeRecord
from syncopate.project_protocol import AddProject, RemoveProject, SetProject
from syncopate.protocol import InitializeRequest, UpdateRequest
from syncopate.states import NodeStatus, ProjectStatus
from tests.unit.test_cluster_timing import TIMEOUT, Clock, assert_views_fresh, join, make
from tests.unit.test_refused_writes import failing_store, in_memory, state, stored


def node(name: str, status: str = "alive", drained: bool = False, **labels: str) -> NodeRecord:
    record = NodeRecord(name=name, token_hash="", storage=1000, ram=1000, labels=labels)
    record.status = NodeStatus(status)
    record.drained = drained
    return record


PLAN_CASES = [
    # (constraints, nodes, nodes holding a copy, expected create, expected delete)
    ([], [node("a"), node("b")], [], ["a", "b"], []),
    ([], [node("a"), node("b")], ["a"], ["b"], []),
    # a dead node keeps its copy, and gets none while dead
    ([], [node("a", "dead"), node("b", "dead")], ["a"], [], []),
    # drained: its copy goes; no new one
    ([], [node("a", drained=True), node("b", drained=True)], ["a"], [], ["a"]),
    # a copy whose node was forgotten goes
    ([], [node("b")], ["gone"], ["b"], ["gone"]),
    # constraints: only matching nodes; a node that stops matching loses its copy
    (["role=sensor"], [node("a", role="sensor"), node("b", role="cam")], ["b"], ["a"], ["b"]),
    (["role!=cam"], [node("a"), node("b", role="cam")], [], ["a"], []),
    (["gpu"], [node("a", gpu="1"), node("b")], [], ["a"], []),
    # a dead node that no longer matches loses its copy too (the labels are the user's word)
    (["role=sensor"], [node("a", "dead", role="cam")], ["a"], [], ["a"]),
]


@pytest.mark.parametrize(("on", "nodes", "have", "create", "delete"), PLAN_CASES)
def test_plan(
    on: list[str], nodes: list[NodeRecord], have: list[str], create: list[str], delete: list[str]
) -> None:
    steps = plan(constraints.parse_all(on), {n.name: n for n in nodes}, have)
    assert (steps.create, steps.delete) == (create, delete)


def test_plan_skips_lite_and_departed_nodes() -> None:
    lite = node("lite")
    lite.kind = "lite"
    left = node("left", "dead")
    left.left = True
    steps = plan([], {"lite": lite, "left": left}, ["left", "lite"])
    assert (steps.create, steps.delete) == ([], ["lite"])


# the cluster ----------------------------------------------------------------------------------
URL = "file:///srv/agent.git"


def add_every(cluster: Cluster, name: str = "mon", **fields: object) -> None:
    cluster.add(
        AddProject.model_validate(
            {"name": name, "url": URL, "every-node": True, "initial_variables": {"n": 0}, **fields}
        )
    )


def report(cluster: Cluster, node_name: str, name: str, variables: dict[str, int]) -> None:
    copy = cluster.projects[f"{name}@{node_name}"]
    cluster.update(
        cluster.nodes[node_name],
        UpdateRequest.model_validate(
            {
                "name": node_name,
                "access-token": "unused",
                "project-name": name,  # the node knows its copy by the project's name
                "project-url": URL,
                "status": "running",
                "epoch": copy.epoch,
                "persistent-variables": variables,
            }
        ),
    )


def copies(cluster: Cluster, name: str = "mon") -> dict[str, str]:
    info = cluster.status([name])[name]
    return {n: c["status"] for n, c in info["copies"].items()}


def test_one_copy_per_node_with_its_own_variables(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    join(cluster, "b")
    add_every(cluster)
    assert copies(cluster) == {"a": "pending", "b": "pending"}
    assert cluster.projects["mon"].node is None
    # Each node is told of its copy under the project's name.
    for name in ("a", "b"):
        told = cluster.assignments(cluster.nodes[name])["projects"]
        assert list(told) == ["mon"] and told["mon"]["project-name"] == "mon"
    report(cluster, "a", "mon", {"n": 1})
    report(cluster, "b", "mon", {"n": 2})
    info = cluster.status(["mon"])["mon"]
    assert info["status"] == "running" and info["copies-running"] == 2
    assert {n: c["persistent-variables"] for n, c in info["copies"].items()} == {
        "a": {"n": 1},
        "b": {"n": 2},
    }
    # Copies are not top-level projects, and the nodes list the project by its name.
    assert list(cluster.status([])) == ["mon"]
    assert cluster.node_table()["a"]["projects"] == ["mon"]


def test_a_joining_node_gets_its_copy_at_once(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    add_every(cluster)
    join(cluster, "b")
    assert set(copies(cluster)) == {"a", "b"}


def test_a_dead_nodes_copy_stays_and_resumes(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    join(cluster, "b")
    add_every(cluster)
    report(cluster, "a", "mon", {"n": 5})
    epoch = cluster.projects["mon@a"].epoch
    clock.now += TIMEOUT / 2
    cluster.touch(cluster.nodes["b"])
    clock.now += TIMEOUT / 2 + 1
    cluster.tick()
    assert cluster.nodes["a"].status is NodeStatus.DEAD
    assert copies(cluster) == {"a": "lost", "b": "pending"}
    assert "not moved" in cluster.projects["mon@a"].reason
    assert cluster.assignments(cluster.nodes["b"])["projects"].keys() == {"mon"}
    cluster.touch(cluster.nodes["a"])
    cluster.tick()
    assert copies(cluster)["a"] == "pending"
    # Same epoch and variables: the node carries on where it was.
    assert cluster.projects["mon@a"].epoch == epoch
    assert cluster.projects["mon@a"].variables == {"n": 5}


def test_drain_and_forget_remove_the_copy_and_undrain_makes_a_fresh_one(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    join(cluster, "b")
    add_every(cluster)
    report(cluster, "a", "mon", {"n": 9})
    old_epoch = cluster.projects["mon@a"].epoch
    cluster.drain("a")
    assert set(copies(cluster)) == {"b"}
    with pytest.raises(Forbidden, match="no copy on node 'a'"):
        cluster.update(
            cluster.nodes["a"],
            UpdateRequest.model_validate(
                {"name": "a", "access-token": "x", "project-name": "mon", "project-url": URL,
                 "status": "running", "epoch": old_epoch}
            ),
        )  # fmt: skip
    cluster.undrain("a")
    fresh = cluster.projects["mon@a"]
    assert fresh.variables == {"n": 0} and fresh.epoch > old_epoch
    cluster.members.leave(cluster.nodes["b"])
    cluster.forget("b")
    assert set(copies(cluster)) == {"a"}
    assert "mon@b" not in cluster.projects


def test_constraints_and_set_on(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    for name, role in (("a", "sensor"), ("b", "cam")):
        cluster.initialize(
            InitializeRequest.model_validate(
                {"preferred-name": name, "syncopate-password": "x", "storage": 100, "ram": 100,
                 "labels": {"role": role}}
            ),
            "127.0.0.1",
        )  # fmt: skip
    add_every(cluster, on=["role=sensor"])
    assert set(copies(cluster)) == {"a"}
    cluster.set(SetProject.model_validate({"name": "mon", "on": ["role=cam"]}), "me")
    assert set(copies(cluster)) == {"b"}
    # The parent is never placed itself, whatever its constraints become.
    assert cluster.projects["mon"].node is None
    assert cluster.state.placed_on("a") == [] and cluster.state.placed_on("b") == ["mon@b"]
    cluster.set(SetProject.model_validate({"name": "mon", "on": ["role=none"]}), "me")
    info = cluster.status(["mon"])["mon"]
    assert info["status"] == "unschedulable" and "role=none" in info["reason"]


def test_actions_on_the_parent_act_on_every_copy(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    join(cluster, "b")
    add_every(cluster)
    before = {n: cluster.projects[f"mon@{n}"].restart for n in "ab"}
    assert cluster.restart(["mon"]) == ["mon"]
    assert all(cluster.projects[f"mon@{n}"].restart == before[n] + 1 for n in "ab")
    cluster.stop(["mon"])
    assert all(cluster.projects[f"mon@{n}"].desired.value == "stopped" for n in "ab")
    # One copy alone, by PROJECT@NODE.
    assert cluster.start(["mon@a"]) == ["mon@a"]
    assert cluster.projects["mon@a"].desired.value == "running"
    assert cluster.projects["mon@b"].desired.value == "stopped"
    cluster.set_variables(["mon"], {"k": 1}, "me")
    assert all(cluster.projects[f"mon@{n}"].variables == {"n": 0, "k": 1} for n in "ab")
    cluster.set(SetProject.model_validate({"name": "mon", "env": {"X": "1"}}), "me")
    assert all(cluster.projects[f"mon@{n}"].env == {"X": "1"} for n in "ab")
    # A new node's copy starts with what was written into the project, and its spec.
    join(cluster, "c")
    assert cluster.projects["mon@c"].variables == {"n": 0, "k": 1}
    assert cluster.projects["mon@c"].env == {"X": "1"}
    cluster.reset(["mon"])
    assert all(cluster.projects[f"mon@{n}"].variables == {"n": 0} for n in "abc")
    with pytest.raises(InvalidRequest, match="PROJECT@NODE"):
        cluster.logs("mon", 10)
    # A copy's log has no output (nothing ran) but says what was done to it.
    done = ["restarted", "stopped", "started", "variables k written by me"]
    done += ["changed by me: env", "reset"]
    assert cluster.logs("mon@a", 10)["lines"] == [f"[syncopate] {what}" for what in done]
    cluster.remove(RemoveProject(name="mon", url=URL))
    assert cluster.projects == {}
    assert cluster.assignments(cluster.nodes["a"])["projects"] == {}
    assert cluster.store.load_projects() == []


def test_remove_forgets_the_project_and_its_copies_in_the_store(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    add_every(cluster)
    for _ in range(3):
        cluster.reset(["mon@a"])  # the copy's epoch goes above the project's
    assert cluster.projects["mon@a"].epoch > cluster.projects["mon"].epoch
    cluster.remove(RemoveProject(name="mon", url=URL))
    assert cluster.store.load_projects() == [] and cluster.projects == {}


def test_copies_survive_a_manager_restart(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    add_every(cluster)
    report(cluster, "a", "mon", {"n": 3})
    cluster.store.close()
    again = make(tmp_path, Clock())
    assert again.projects["mon@a"].variables == {"n": 3}
    assert again.projects["mon@a"].copy_of == "mon"
    assert again.assignments(again.nodes["a"])["projects"].keys() == {"mon"}
    assert again.projects["mon@a"].status is ProjectStatus.RUNNING


def test_a_stopped_parent_makes_stopped_copies(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    add_every(cluster, start=False)
    assert copies(cluster) == {"a": "stopped"}
    assert cluster.status(["mon"])["mon"]["status"] == "stopped"


def test_a_refused_write_leaves_the_copies_as_they_were(tmp_path: Path) -> None:
    clock = Clock()
    store, disk = failing_store(tmp_path)
    cluster = Cluster(store, ClusterSettings(node_timeout=TIMEOUT), clock=clock)
    join(cluster, "a")
    join(cluster, "b")
    disk.full = True
    with pytest.raises(StoreFailed):
        add_every(cluster)
    assert cluster.projects == {} and not any(cluster.state.on_node.values())
    disk.full = False
    add_every(cluster)
    disk.full = True
    before = state(cluster)
    with pytest.raises(StoreFailed):
        cluster.drain("a")
    with pytest.raises(StoreFailed):
        cluster.reset(["mon"])
    assert state(cluster) == before
    # The monitor finds the work again once the store takes writes.
    clock.now += TIMEOUT / 2
    cluster.touch(cluster.nodes["b"])
    clock.now += TIMEOUT / 2 + 1
    before = state(cluster)
    cluster.tick()
    assert state(cluster) == before
    disk.full = False
    cluster.tick()
    assert copies(cluster) == {"a": "lost", "b": "pending"}
    assert in_memory(cluster) == stored(cluster)
    assert_views_fresh(cluster)


def test_a_label_change_deletes_or_makes_copies_and_never_moves_one(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    join(cluster, "b")
    cluster.label("a", {"role": "sensor"}, [])
    add_every(cluster, on=["role=sensor"])
    assert set(copies(cluster)) == {"a"}
    cluster.label("b", {"role": "sensor"}, [])
    cluster.tick()
    assert set(copies(cluster)) == {"a", "b"}
    cluster.label("a", {}, ["role"])  # a no longer meets it: its copy goes, it does not move
    assert cluster.projects["mon@a"].moving_to is None
    cluster.tick()
    assert set(copies(cluster)) == {"b"}
    assert cluster.state.placed_on("b") == ["mon@b"] and cluster.projects["mon"].node is None
