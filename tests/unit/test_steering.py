"""Labels, constraints and calm balance in the cluster (DESIGN section 12), with a clock the test
controls and a real SQLite store: node-label and `set --on` moving projects, unplaced projects
placed when a label arrives, and balance that waits for a node to settle and moves one at a
time, never exclusive or `--stay` projects."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncopate.cli.main import app
from syncopate.errors import InvalidRequest, NotFound
from syncopate.manager.app import make_app
from syncopate.manager.cluster import Cluster, ClusterSettings
from syncopate.manager.context import STATE, ManagerSettings
from syncopate.manager.monitor import BALANCE_GRAIN
from syncopate.manager.server import ServeOptions
from syncopate.manager.store import Store
from syncopate.project_protocol import AddProject, SetProject
from syncopate.protocol import InitializeRequest
from syncopate.states import ProjectStatus
from tests.unit.test_cluster_timing import TIMEOUT, Clock, assert_views_fresh, report, touch_all


def make(tmp_path: Path, clock: Clock, balance: bool = True) -> Cluster:
    settings = ClusterSettings(node_timeout=TIMEOUT, balance=balance)
    return Cluster(Store(tmp_path), settings, clock=clock)


def join(cluster: Cluster, name: str, **labels: str) -> str:
    request = InitializeRequest.model_validate(
        {
            "preferred-name": name,
            "syncopate-password": "x",
            "storage": 1000,
            "ram": 1000,
            "labels": labels,
        }
    )
    return cluster.initialize(request, "127.0.0.1")[0]


def add(cluster: Cluster, name: str, *on: str, **fields: object) -> None:
    spec = AddProject.model_validate(
        {"name": name, "url": f"file:///srv/{name}.git", "on": list(on), **fields}
    )
    cluster.add(spec)


def node_of(cluster: Cluster, project: str) -> str | None:
    return cluster.projects[project].node


def moving_to(cluster: Cluster, project: str) -> str | None:
    return cluster.projects[project].moving_to


def settle(cluster: Cluster, clock: Clock, seconds: float) -> None:
    """Let `seconds` pass with every node speaking, then tick."""
    clock.now += seconds
    touch_all(cluster)
    cluster.tick()


def test_label_change_moves_a_project_that_no_longer_meets_its_constraints(
    tmp_path: Path,
) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "lab-1", zone="lab")
    join(cluster, "lab-2", zone="lab")
    join(cluster, "hall", zone="hall")
    add(cluster, "sensor", "zone=lab")
    assert node_of(cluster, "sensor") == "lab-1"
    report(cluster, "lab-1", "sensor")
    # Still meets it: nothing moves.
    cluster.label("lab-1", {"rack": "3"}, [])
    assert moving_to(cluster, "sensor") is None
    # lab-1 leaves the lab: the project is stopped there, then runs on lab-2.
    assert cluster.label("lab-1", {"zone": "hall"}, ["rack"]) == {"zone": "hall"}
    assert moving_to(cluster, "sensor") == "lab-2"
    report(cluster, "lab-1", "sensor", status="stopped")
    assert node_of(cluster, "sensor") == "lab-2"
    # No lab left: taken off at once, unschedulable with the reason.
    cluster.label("lab-2", {}, ["zone"])
    assert node_of(cluster, "sensor") is None
    assert cluster.projects["sensor"].status is ProjectStatus.UNSCHEDULABLE
    assert cluster.projects["sensor"].reason == "no live node meets constraint zone=lab"
    # Labels are stored: a restarted manager places by them.
    cluster.store.close()
    restarted = make(tmp_path, clock)
    assert restarted.nodes["lab-1"].labels == {"zone": "hall"}
    assert_views_fresh(restarted)


def test_a_label_arriving_places_the_projects_waiting_for_it(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    add(cluster, "trainer", "gpu")
    add(cluster, "detector", "gpu", "zone=lab")
    assert cluster.projects["trainer"].reason == "no live node meets constraint gpu"
    assert cluster.projects["detector"].reason == "no live node meets constraints gpu, zone=lab"
    cluster.label("a", {"gpu": "yes"}, [])
    cluster.tick()
    assert node_of(cluster, "trainer") == "a"
    # Still waiting, and its reason says for what now.
    assert node_of(cluster, "detector") is None
    assert cluster.projects["detector"].reason == "no live node meets constraint zone=lab"
    assert_views_fresh(cluster)


def test_set_on_moves_or_places_the_project(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a", zone="hall")
    join(cluster, "b", zone="lab")
    add(cluster, "p")
    assert node_of(cluster, "p") == "a"
    report(cluster, "a", "p")
    cluster.set(SetProject.model_validate({"name": "p", "on": ["zone=lab"]}), "me")
    assert moving_to(cluster, "p") == "b"
    report(cluster, "a", "p", status="stopped")
    assert node_of(cluster, "p") == "b"
    # A constraint no node meets: taken off, unschedulable, named.
    cluster.set(SetProject.model_validate({"name": "p", "on": ["gpu"]}), "me")
    assert node_of(cluster, "p") is None
    assert cluster.projects["p"].reason == "no live node meets constraint gpu"
    # An unplaced project is placed as soon as its constraints allow.
    cluster.set(SetProject.model_validate({"name": "p", "on": ["zone!=lab"]}), "me")
    assert node_of(cluster, "p") == "a"
    assert_views_fresh(cluster)


def test_a_move_to_a_node_that_lost_its_label_goes_elsewhere(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a", zone="lab")
    add(cluster, "p", "zone=lab")
    report(cluster, "a", "p")
    join(cluster, "b", zone="lab")
    join(cluster, "c", zone="lab")
    cluster.drain("a")
    target = moving_to(cluster, "p")
    assert target == "b"
    cluster.label(target, {"zone": "hall"}, [])
    report(cluster, "a", "p", status="stopped")
    assert node_of(cluster, "p") == "c"


def test_a_label_change_leaves_a_drained_nodes_waiting_project_to_the_drain(
    tmp_path: Path,
) -> None:
    """Drained with nowhere to go, a project keeps running; a label it still meets keeps it."""
    cluster = make(tmp_path, Clock())
    join(cluster, "a", zone="lab")
    add(cluster, "p", "zone=lab")
    report(cluster, "a", "p")
    cluster.drain("a")
    cluster.label("a", {"rack": "2"}, [])
    assert node_of(cluster, "p") == "a"
    assert cluster.projects["p"].reason.startswith("waiting to leave drained node")
    # One it no longer meets: off at once, unschedulable, saying why.
    cluster.label("a", {}, ["zone"])
    assert node_of(cluster, "p") is None
    assert cluster.projects["p"].reason == "no live node accepts projects (all dead or drained)"


@pytest.mark.parametrize(
    ("labels", "remove", "error", "says"),
    [
        ({"zone": "lab"}, ["zone"], InvalidRequest, "set and removed at once"),
        ({"bad key": "x"}, [], InvalidRequest, "label key 'bad key' is not valid"),
        ({f"k{i}": "v" for i in range(64)}, [], InvalidRequest, "at most 64 labels"),
    ],
)
def test_bad_label_changes_change_nothing(
    tmp_path: Path, labels: dict[str, str], remove: list[str], error: type[Exception], says: str
) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a", zone="hall")
    with pytest.raises(error, match=says):
        cluster.label("a", labels, remove)
    assert cluster.nodes["a"].labels == {"zone": "hall"}
    with pytest.raises(NotFound):
        cluster.label("nope", {"zone": "x"}, [])


def busy_fleet(cluster: Cluster, count: int = 6) -> None:
    """Node a runs `count` plain projects, a --stay one and an exclusive one."""
    join(cluster, "a")
    for i in range(count):
        add(cluster, f"p{i}")
    add(cluster, "anchored", stay=True)
    add(cluster, "device", exclusive=True)
    for name in cluster.projects:
        report(cluster, "a", name)


def test_balance_waits_for_a_new_node_to_settle_then_moves_one_at_a_time(
    tmp_path: Path,
) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    busy_fleet(cluster)
    settle(cluster, clock, TIMEOUT)  # the manager's own start-up grace is over
    join(cluster, "b")
    for _ in range(3):
        settle(cluster, clock, 2 * TIMEOUT / 3 - 0.1)
        assert not cluster.state.incoming, "b received a balance move before 2 x node-timeout"
    moved: list[str] = []
    for _ in range(10):
        settle(cluster, clock, 0.5)
        incoming = sorted(cluster.state.incoming.get("b", ()))
        assert len(incoming) <= 1, f"more than one balance move to b at once: {incoming}"
        for name in incoming:
            moved.append(name)
            report(cluster, "a", name, status="stopped")
    # 8 projects: 4 and 4 once balanced, but the --stay and exclusive ones never move.
    assert len(moved) == 4
    assert "anchored" not in moved and "device" not in moved
    assert node_of(cluster, "anchored") == "a" and node_of(cluster, "device") == "a"
    assert_views_fresh(cluster)


def test_a_node_back_from_dead_settles_again(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    busy_fleet(cluster)
    join(cluster, "b")
    settle(cluster, clock, 2 * TIMEOUT)
    assert cluster.state.incoming.get("b")
    for name in list(cluster.state.incoming["b"]):
        report(cluster, "a", name, status="stopped")
    # b goes silent and dies (its projects fail over to a), then speaks again.
    clock.now += TIMEOUT + 1
    cluster.touch(cluster.nodes["a"])
    cluster.tick()
    assert cluster.nodes["b"].status.value == "dead"
    settle(cluster, clock, 1)  # b is alive again from here
    assert cluster.nodes["b"].status.value == "alive"
    settle(cluster, clock, 2 * TIMEOUT - 0.5)
    assert bound_for(cluster, "b") == []
    settle(cluster, clock, 1)
    # The failed-over projects are still pending on a (not running): a move lands at once.
    assert len(bound_for(cluster, "b")) == 1


def bound_for(cluster: Cluster, node: str) -> list[str]:
    """The projects on `node` or moving there."""
    return [name for name, p in cluster.projects.items() if node in (p.node, p.moving_to)]


def test_no_balance_moves_nothing_but_drain_still_does(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock, balance=False)
    busy_fleet(cluster)
    join(cluster, "b")
    for _ in range(4):
        settle(cluster, clock, TIMEOUT)
    assert not cluster.state.incoming
    assert all(p.node == "a" for p in cluster.projects.values())
    cluster.drain("a")
    assert len(cluster.state.incoming["b"]) == len(cluster.projects)


@pytest.mark.parametrize(("flag", "balance"), [([], True), (["--no-balance"], False)])
def test_serve_no_balance_reaches_the_cluster(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], balance: bool
) -> None:
    served: list[ServeOptions] = []

    async def serve(options: ServeOptions, ready: object = None) -> None:
        served.append(options)

    monkeypatch.setattr("syncopate.manager.server.serve", serve)
    done = CliRunner().invoke(app, ["manager", "serve", "--data-dir", str(tmp_path), *flag])
    assert done.exit_code == 0, done.output
    assert served[0].balance is balance
    manager = make_app(ManagerSettings(data_dir=tmp_path, password="x", balance=balance))
    state = manager[STATE]
    try:
        assert state.cluster.settings.balance is balance
    finally:
        state.store.close()


def test_nodes_coming_of_age_one_after_another_share_balance_passes(tmp_path: Path) -> None:
    """Nodes that joined a moment apart come of age a moment apart; the monitor looks again
    no sooner than a grain (monitor.BALANCE_GRAIN) later, not on every tick (a pass scans every
    node and project: tens of ms at 10,000)."""
    clock = Clock()
    cluster = make(tmp_path, clock)
    busy_fleet(cluster)
    settle(cluster, clock, 2 * TIMEOUT + 1)  # a is of age
    for i in range(4):
        join(cluster, f"young-{i}")
        clock.now += 0.05
    cluster.state.balance_needed = True
    cluster.tick()
    grain = min(BALANCE_GRAIN, TIMEOUT / 4)
    first_ready = cluster.nodes["young-0"].alive_since + cluster.settings.balance_after
    assert cluster.state.balance_at == pytest.approx(max(first_ready, clock.now + grain))
    # Once the first has come of age: the next look is a grain on, though young-1 is ready
    # 0.05 s later.
    clock.now = first_ready
    touch_all(cluster)
    cluster.tick()
    assert cluster.state.balance_at == pytest.approx(clock.now + grain)
    assert grain > 0.15  # the four nodes' ages all fall within one grain of the first


def test_balance_moves_when_counts_differ_by_two_and_not_when_by_one(tmp_path: Path) -> None:
    """The quick check before a balance pass (counts within one of each other: no pass) must
    not hide a move the scheduler would make."""
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    add(cluster, "p0")
    add(cluster, "p1")
    for name in cluster.projects:
        report(cluster, "a", name)
    join(cluster, "b")
    settle(cluster, clock, 2 * TIMEOUT + 1)
    assert sorted(cluster.state.incoming.get("b", ())) in (["p0"], ["p1"])  # 2 and 0: one moves

    clock2 = Clock()
    cluster2 = make(tmp_path / "two", clock2)
    join(cluster2, "a")
    add(cluster2, "p0")
    report(cluster2, "a", "p0")
    join(cluster2, "b")
    settle(cluster2, clock2, 2 * TIMEOUT + 1)
    assert not cluster2.state.incoming  # 1 and 0: nothing to even
    assert node_of(cluster2, "p0") == "a"
