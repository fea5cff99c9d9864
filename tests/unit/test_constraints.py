"""Labels and `--on` constraints (DESIGN section 12): parsing, matching, and the scheduler
placing with them, from tables."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncopate.constraints import check_labels, matches, parse, parse_all, unmet
from syncopate.manager.scheduler import (
    NodeView,
    ProjectNeed,
    fits,
    place,
    place_many,
    with_project,
)

LAB = {"zone": "lab", "arch": "arm64"}
HALL = {"zone": "hall", "arch": "amd64", "gpu": "yes"}


@pytest.mark.parametrize(
    ("texts", "labels", "expected"),
    [
        # K=V: the label with that value
        (["zone=lab"], LAB, True),
        (["zone=lab"], HALL, False),
        (["zone=lab"], {}, False),
        # K!=V: no label K with value V; a node without K meets it
        (["zone!=lab"], LAB, False),
        (["zone!=lab"], HALL, True),
        (["zone!=lab"], {}, True),
        # K: the label, whatever its value (even empty)
        (["gpu"], HALL, True),
        (["gpu"], LAB, False),
        (["gpu"], {"gpu": ""}, True),
        # several: all must hold
        (["zone=lab", "arch=arm64"], LAB, True),
        (["zone=lab", "arch=amd64"], LAB, False),
        (["gpu", "zone!=lab"], HALL, True),
        (["gpu", "zone!=hall"], HALL, False),
        # none: every node
        ([], {}, True),
        ([], HALL, True),
        # a value is compared whole, case and all
        (["zone=la"], LAB, False),
        (["zone=LAB"], LAB, False),
    ],
)
def test_matching(texts: list[str], labels: dict[str, str], expected: bool) -> None:
    parsed = parse_all(texts)
    assert matches(parsed, labels) is expected
    assert (not unmet(parsed, labels)) is expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("zone=lab", "zone=lab"),
        (" zone = lab ", "zone=lab"),
        ("zone!=x", "zone!=x"),
        ("gpu", "gpu"),
    ],
)
def test_parse_writes_back(text: str, shown: str) -> None:
    assert str(parse(text)) == shown


@pytest.mark.parametrize("bad", ["", "=lab", "-x=1", "zone=a b", "zone=lab!", "k" * 64])
def test_parse_refuses(bad: str) -> None:
    with pytest.raises(ValueError, match="K=V, K!=V or K"):
        parse(bad)


@pytest.mark.parametrize(
    ("labels", "complaint"),
    [
        ({"bad key": "x"}, "label key 'bad key' is not valid"),
        ({"zone": "a b"}, "label zone: value 'a b' is not valid"),
        ({f"k{i}": "v" for i in range(65)}, "at most 64 labels"),
    ],
)
def test_check_labels_refuses(labels: dict[str, str], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        check_labels(labels)


def node(name: str, labels: dict[str, str], *, ram_used: float = 0, live: bool = True) -> NodeView:
    return NodeView(name, live, 1000, 1000, ram_used=ram_used, labels=labels)


def need(name: str = "p", *on: str, ram: float = 0) -> ProjectNeed:
    return ProjectNeed(name, ram=ram, constraints=tuple(parse_all(on)))


FLEET = [node("hall-1", HALL), node("lab-1", LAB, ram_used=100), node("bare", {})]


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        (need("p"), "bare"),  # no constraints: the usual rank (least disk, projects, name)
        (need("p", "zone=lab"), "lab-1"),
        (need("p", "zone!=hall"), "bare"),
        (need("p", "gpu"), "hall-1"),
        (need("p", "zone!=lab", "arch"), "hall-1"),
    ],
)
def test_place_only_on_matching_nodes(project: ProjectNeed, expected: str) -> None:
    assert place(project, FLEET).node == expected
    assert place_many([project, need("zz")], FLEET)[project.name].node == expected


@pytest.mark.parametrize(
    ("project", "nodes", "reason"),
    [
        # the one constraint no live node meets is named
        (need("p", "gpu"), [node("lab-1", LAB)], "no live node meets constraint gpu"),
        (need("p", "zone=lab", "gpu"), [node("lab-1", LAB)], "no live node meets constraint gpu"),
        (
            need("p", "gpu", "rack"),
            [node("lab-1", LAB)],
            "no live node meets constraints gpu, rack",
        ),
        # each is met somewhere, but not on one node
        (
            need("p", "zone=lab", "gpu"),
            [node("lab-1", LAB), node("hall-1", HALL)],
            "no live node meets constraints zone=lab and gpu together",
        ),
        # a dead node that meets it does not count
        (
            need("p", "gpu"),
            [node("hall-1", HALL, live=False), node("lab-1", LAB)],
            "constraint gpu",
        ),
        # matching nodes without the room: the RAM reason, counted over them only
        (
            need("p", "zone=lab", ram=950),
            [node("lab-1", LAB, ram_used=100), node("hall-1", HALL)],
            "no live node on zone=lab has 950 MB RAM (most free: 900 MB on lab-1)",
        ),
        # no live node at all says so, whatever the constraints
        (need("p", "gpu"), [node("hall-1", HALL, live=False)], "all dead or drained"),
    ],
)
def test_unschedulable_reason_names_the_constraint(
    project: ProjectNeed, nodes: list[NodeView], reason: str
) -> None:
    alone = place(project, nodes)
    assert alone.node is None
    assert alone.reason == reason or reason in alone.reason
    many = place_many([project, need("zz", "no-such-label")], nodes)[project.name]
    assert many.node is None
    assert reason in many.reason


def test_place_many_fills_matching_nodes_only() -> None:
    nodes = [node("lab-1", LAB), node("lab-2", LAB), node("hall-1", HALL)]
    projects = [need(f"lab{i}", "zone=lab", ram=300) for i in range(7)] + [need("free")]
    result = place_many(projects, nodes)
    on = {name: p.node for name, p in result.items()}
    # three of 300 MB fit in each lab node's 1000 MB; the seventh waits, named by its RAM
    assert sorted(n for n in on.values() if n) == ["hall-1"] + ["lab-1"] * 3 + ["lab-2"] * 3
    assert on["free"] == "hall-1"
    assert result["lab6"].reason.startswith("no live node on zone=lab has 300 MB RAM")


def test_fits_needs_constraints_room_and_life() -> None:
    assert fits(need("p", "zone=lab"), node("lab-1", LAB))
    assert not fits(need("p", "zone=lab"), node("hall-1", HALL))
    assert not fits(need("p", "zone=lab"), node("lab-1", LAB, live=False))
    assert not fits(need("p", "zone=lab", ram=1000), node("lab-1", LAB, ram_used=1))


label_sets = st.dictionaries(
    st.sampled_from(["zone", "gpu", "arch"]), st.sampled_from(["a", "b"]), max_size=3
)
node_views = st.builds(
    NodeView,
    name=st.sampled_from([f"n{i}" for i in range(6)]),
    schedulable=st.booleans(),
    storage=st.integers(0, 1000).map(float),
    ram=st.integers(0, 1000).map(float),
    disk_used=st.integers(0, 500).map(float),
    ram_used=st.integers(0, 500).map(float),
    projects=st.integers(0, 5),
    labels=label_sets,
)
constraint_sets = st.lists(
    st.sampled_from(["zone=a", "zone!=a", "gpu", "arch=b", "arch!=b", "zone"]), max_size=2
).map(lambda texts: tuple(parse_all(texts)))
needs = st.builds(
    ProjectNeed,
    name=st.text("abcdef", min_size=1, max_size=4),
    ram=st.integers(0, 400).map(float),
    disk=st.integers(0, 400).map(float),
    constraints=constraint_sets,
)


@given(
    st.lists(node_views, max_size=6, unique_by=lambda n: n.name),
    st.lists(needs, max_size=12, unique_by=lambda p: p.name),
)
def test_place_many_with_constraints_chooses_as_placing_one_by_one(
    nodes: list[NodeView], projects: list[ProjectNeed]
) -> None:
    expected: dict[str, str | None] = {}
    views = {n.name: n for n in nodes}
    for project in sorted(projects, key=lambda p: p.name):
        choice = place(project, views.values()).node
        expected[project.name] = choice
        if choice is not None:
            assert matches(project.constraints, views[choice].labels)
            views[choice] = with_project(views[choice], project)
    got = place_many(projects, nodes)
    assert {name: p.node for name, p in got.items()} == expected
    assert all(p.reason for p in got.values() if p.node is None)
