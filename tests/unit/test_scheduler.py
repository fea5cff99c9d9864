"""Placement and balance, from tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncopate.constraints import parse
from syncopate.manager.scheduler import (
    Move,
    NodeView,
    ProjectNeed,
    place,
    place_many,
    plan_balance,
    with_project,
)


def node(
    name: str,
    disk_used: float = 0,
    projects: int = 0,
    storage: float = 1000,
    ram: float = 1000,
    ram_used: float = 0,
    schedulable: bool = True,
) -> NodeView:
    return NodeView(name, schedulable, storage, ram, disk_used, ram_used, projects)


@pytest.mark.parametrize(
    ("need", "nodes", "expected"),
    [
        # least disk used wins
        (ProjectNeed("p"), [node("a", disk_used=50), node("b", disk_used=10)], "b"),
        # tie on disk: fewer projects
        (ProjectNeed("p"), [node("a", 10, projects=3), node("b", 10, projects=1)], "b"),
        # tie on disk and projects: name
        (ProjectNeed("p"), [node("b", 10, 1), node("a", 10, 1)], "a"),
        # a node without the RAM is skipped even if it has the least disk
        (ProjectNeed("p", ram=600), [node("a", 0, ram_used=500), node("b", 100)], "b"),
        # a node without the storage is skipped
        (ProjectNeed("p", disk=950), [node("a", 100), node("b", 40)], "b"),
        # dead or drained nodes are never chosen
        (ProjectNeed("p"), [node("a", schedulable=False), node("b", 500)], "b"),
        # exactly fitting is fitting
        (ProjectNeed("p", ram=1000, disk=1000), [node("a")], "a"),
    ],
)
def test_place_picks(need: ProjectNeed, nodes: list[NodeView], expected: str) -> None:
    assert place(need, nodes).node == expected


@pytest.mark.parametrize(
    ("need", "nodes", "reason_has"),
    [
        (ProjectNeed("p"), [], "no live node"),
        (ProjectNeed("p"), [node("a", schedulable=False)], "dead or drained"),
        (ProjectNeed("p", ram=2000), [node("a"), node("b", ram_used=300)], "2000 MB RAM"),
        (ProjectNeed("p", disk=5000), [node("a", disk_used=100)], "most free: 900 MB on a"),
        (
            ProjectNeed("p", ram=700, disk=700),
            [node("a", ram_used=500), node("b", disk_used=500)],
            "on the same node",
        ),
    ],
)
def test_place_explains_unschedulable(
    need: ProjectNeed, nodes: list[NodeView], reason_has: str
) -> None:
    placement = place(need, nodes)
    assert placement.node is None
    assert reason_has in placement.reason


def test_place_many_spreads_by_disk() -> None:
    needs = [ProjectNeed(f"p{i}", disk=100) for i in range(4)]
    result = place_many(needs, [node("a"), node("b")])
    assert [result[f"p{i}"].node for i in range(4)] == ["a", "b", "a", "b"]


def test_place_many_runs_out_of_room() -> None:
    needs = [ProjectNeed(f"p{i}", disk=600) for i in range(3)]
    result = place_many(needs, [node("a"), node("b")])
    assert result["p2"].node is None
    assert "storage" in result["p2"].reason


def test_balance_moves_to_a_new_node_until_within_one() -> None:
    assignments = {f"p{i}": "a" for i in range(6)}
    needs = {name: ProjectNeed(name) for name in assignments}
    moves = plan_balance(assignments, needs, [node("a", projects=6), node("b")], max_moves=10)
    assert len(moves) == 3
    assert all(m.source == "a" and m.target == "b" for m in moves)


def test_balance_respects_the_move_budget() -> None:
    assignments = {f"p{i}": "a" for i in range(6)}
    needs = {name: ProjectNeed(name) for name in assignments}
    moves = plan_balance(assignments, needs, [node("a", projects=6), node("b")], max_moves=2)
    assert moves == [Move("p0", "a", "b"), Move("p1", "a", "b")]


def test_balance_leaves_a_balanced_fleet_alone() -> None:
    assignments = {"p0": "a", "p1": "a", "p2": "b"}
    needs = {name: ProjectNeed(name) for name in assignments}
    assert plan_balance(assignments, needs, [node("a", projects=2), node("b", projects=1)], 5) == []


def test_balance_only_moves_what_fits_and_is_movable() -> None:
    assignments = {"big": "a", "p1": "a", "p2": "a"}
    needs = {"big": ProjectNeed("big", ram=900), "p1": ProjectNeed("p1"), "p2": ProjectNeed("p2")}
    nodes = [node("a", projects=3), node("b", ram_used=500)]
    moves = plan_balance(assignments, needs, nodes, 5, movable=["big", "p2"])
    assert moves == [Move("p2", "a", "b")]


def test_balance_ignores_unschedulable_nodes() -> None:
    assignments = {f"p{i}": "a" for i in range(4)}
    needs = {name: ProjectNeed(name) for name in assignments}
    nodes = [node("a", projects=4), node("b", schedulable=False)]
    assert plan_balance(assignments, needs, nodes, 5) == []


names = st.sampled_from([f"n{i}" for i in range(6)])
node_views = st.builds(
    NodeView,
    name=names,
    schedulable=st.booleans(),
    storage=st.integers(0, 1000).map(float),
    ram=st.integers(0, 1000).map(float),
    disk_used=st.integers(0, 500).map(float),
    ram_used=st.integers(0, 500).map(float),
    projects=st.integers(0, 5),
)
needs = st.builds(
    ProjectNeed,
    name=st.text("abcdef", min_size=1, max_size=4),
    ram=st.integers(0, 400).map(float),
    disk=st.integers(0, 400).map(float),
)


@given(
    st.lists(node_views, max_size=6, unique_by=lambda n: n.name),
    st.lists(needs, max_size=12, unique_by=lambda p: p.name),
)
def test_place_many_chooses_as_placing_one_by_one(
    nodes: list[NodeView], projects: list[ProjectNeed]
) -> None:
    expected: dict[str, str | None] = {}
    views = {n.name: n for n in nodes}
    for project in sorted(projects, key=lambda p: p.name):
        choice = place(project, views.values()).node
        expected[project.name] = choice
        if choice is not None:
            views[choice] = with_project(views[choice], project)
    got = place_many(projects, nodes)
    assert {name: p.node for name, p in got.items()} == expected
    assert all(p.reason for p in got.values() if p.node is None)


def test_balance_only_to_receivers_one_each() -> None:
    """Calm balance: young nodes receive nothing; each receiver one move per plan."""
    assignments = {f"p{i}": "a" for i in range(9)}
    needs = {name: ProjectNeed(name) for name in assignments}
    nodes = [node("a", projects=9), node("b"), node("c"), node("young")]
    moves = plan_balance(assignments, needs, nodes, 10, receivers=["b", "c"], per_target=1)
    assert moves == [Move("p0", "a", "b"), Move("p1", "a", "c")]
    assert plan_balance(assignments, needs, nodes, 10, receivers=[], per_target=1) == []
    # Without a per-target limit a receiver takes several, still never the young node.
    moves = plan_balance(assignments, needs, nodes, 10, receivers=["b"])
    assert {m.target for m in moves} == {"b"} and len(moves) == 4


def test_balance_skips_a_light_node_no_project_may_go_to() -> None:
    """The lightest receiver meets no heavy project's constraints: the next one takes it."""
    lab = {"zone": "lab"}
    assignments = {f"p{i}": "a" for i in range(4)}
    needs = {name: ProjectNeed(name, constraints=(parse("zone=lab"),)) for name in assignments}
    nodes = [
        NodeView("a", True, 1000, 1000, projects=4, labels=lab),
        NodeView("b", True, 1000, 1000, projects=0),
        NodeView("c", True, 1000, 1000, projects=1, labels=lab),
    ]
    assignments["q"] = "c"
    needs["q"] = ProjectNeed("q")
    moves = plan_balance(assignments, needs, nodes, 5, movable=[f"p{i}" for i in range(4)])
    assert moves == [Move("p0", "a", "c")]
