"""One placement without a scan (rank_index.py) gives the answers of the scan it replaces.

`ClusterState.place` must choose the node `scheduler.place` chooses over every view, and say
the same reason when none fits. A property-style check with a fixed seed: random nodes, random
projects on them, random changes (projects come and go, usage grows, nodes die, are drained,
relabelled, join and are forgotten), and after each batch random projects placed both ways.
"""

from __future__ import annotations

import random

import pytest

from syncopate.constraints import parse_all
from syncopate.manager import rank_index, scheduler
from syncopate.manager.cluster_state import ClusterState
from syncopate.manager.records import NodeRecord, ProjectRecord
from syncopate.states import NodeStatus

CONSTRAINTS = [[], [], [], ["zone=z1"], ["gpu"], ["zone!=z0", "arch=arm"], ["zone=z9"]]


def new_node(rng: random.Random, name: str) -> NodeRecord:
    labels = {"zone": f"z{rng.randrange(3)}", "arch": rng.choice(["arm", "amd"])}
    if rng.random() < 0.1:
        labels["gpu"] = "yes"
    return NodeRecord(
        name=name,
        token_hash="",
        storage=rng.choice([500.0, 1000.0, 4000.0]),
        ram=rng.choice([256.0, 1000.0, 2000.0]),
        labels=labels,
    )


class World:
    """A ClusterState changed as the cluster changes it: records, then their indexes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.state = ClusterState()
        self.count = 0

    def join(self) -> None:
        self.count += 1
        node = new_node(self.rng, f"n{self.count:03}")
        self.state.nodes[node.name] = node
        self.state.on_node[node.name] = set()
        self.state.stale_views.add(node.name)

    def add(self) -> None:
        if not self.state.nodes:
            return
        self.count += 1
        project = ProjectRecord(
            name=f"p{self.count:04}",
            url="u",
            ram=self.rng.choice([0.0, 10.0, 100.0]),
            disk=self.rng.choice([0.0, 20.0, 200.0]),
            node=self.rng.choice(sorted(self.state.nodes)),
        )
        if self.rng.random() < 0.1:
            project.moving_to = self.rng.choice(sorted(self.state.nodes))
        self.state.projects[project.name] = project
        self.state.index(project, add=True)

    def change(self) -> None:
        """One random change, through the indexes as the cluster's writes make it."""
        rng, state = self.rng, self.state
        what = rng.choice(["join", "add", "add", "add", "remove", "usage", "node", "forget"])
        if what == "join":
            self.join()
        elif what == "add":
            self.add()
        elif what == "remove" and state.projects:
            project = state.projects.pop(rng.choice(sorted(state.projects)))
            state.index(project, add=False)
        elif what == "usage" and state.projects:
            project = state.projects[rng.choice(sorted(state.projects))]
            state.index(project, add=False)
            project.disk_usage = rng.choice([0.0, 50.0, 300.0, 900.0])
            project.ram_usage = rng.choice([0.0, 50.0, 300.0])
            state.index(project, add=True)
        elif what == "node" and state.nodes:
            node = state.nodes[rng.choice(sorted(state.nodes))]
            field = rng.choice(["status", "drained", "kind", "labels"])
            if field == "status":
                node.status = rng.choice([NodeStatus.ALIVE, NodeStatus.DEAD])
            elif field == "drained":
                node.drained = not node.drained
            elif field == "kind":
                node.kind = "agent" if node.kind == "lite" else rng.choice(["agent", "lite"])
            else:
                node.labels = new_node(rng, node.name).labels
            state.stale_views.add(node.name)
        elif what == "forget" and state.nodes and rng.random() < 0.3:
            name = rng.choice(sorted(state.nodes))
            for project_name in sorted(state.on_node.get(name, ())):
                state.index(state.projects.pop(project_name), add=False)
            del state.nodes[name]
            state.on_node.pop(name, None)
            state.stale_views.add(name)

    def need(self) -> scheduler.ProjectNeed:
        rng = self.rng
        return scheduler.ProjectNeed(
            "new",
            ram=rng.choice([0.0, 100.0, 500.0, 1500.0, 3000.0]),
            disk=rng.choice([0.0, 100.0, 800.0, 3000.0, 9000.0]),
            constraints=tuple(parse_all(rng.choice(CONSTRAINTS))),
        )


@pytest.mark.parametrize("look", [rank_index.LOOK, 3])
def test_place_chooses_as_the_scan_does(monkeypatch: pytest.MonkeyPatch, look: int) -> None:
    """Also with a short walk (`LOOK`), where more answers come from the scan's fallback."""
    monkeypatch.setattr(rank_index, "LOOK", look)
    rng = random.Random(18)
    world = World(rng)
    for _ in range(40):
        world.join()
    for _ in range(120):
        world.add()
    found_by_walk = 0
    for _ in range(300):
        for _ in range(rng.randrange(1, 6)):
            world.change()
        for _ in range(5):
            need = world.need()
            names = sorted(world.state.nodes)
            exclude = rng.choice([None, *names[:3]])
            views = world.state.views()
            expected = scheduler.place(need, [v for v in views if v.name != exclude])
            walked = world.state.ranks.first_fit(need, world.state.view_cache, exclude)
            found_by_walk += walked is not None
            assert world.state.place(need, exclude) == expected
        # The heap holds every schedulable node at its rank, and not too many stale entries.
        ranks = world.state.ranks
        assert ranks.ranks == {v.name: scheduler.rank(v) for v in views if v.schedulable}
        assert {(r, n) for n, r in ranks.ranks.items()} <= set(ranks.heap)
        assert len(ranks.heap) <= 2 * len(ranks.ranks) + rank_index.SLACK + 1
    assert found_by_walk > 200, "the walk was hardly used: the test checks only the scan"


def test_place_many_of_one_is_place() -> None:
    rng = random.Random(7)
    world = World(rng)
    for _ in range(10):
        world.join()
    for _ in range(20):
        world.add()
    need = world.need()
    assert world.state.place_many([need]) == {"new": world.state.place(need)}
    both = [need, scheduler.ProjectNeed("other", 10.0, 10.0)]
    assert world.state.place_many(both) == scheduler.place_many(both, world.state.views())


def test_no_node_at_all_says_so() -> None:
    state = ClusterState()
    need = scheduler.ProjectNeed("p")
    assert state.place(need) == scheduler.Placement(None, "no live node to run it")
