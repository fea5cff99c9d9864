"""What the manager writes into a project's log: who acted on it, and where it moved and why."""

from __future__ import annotations

from pathlib import Path

from syncopate.manager.cluster import Cluster
from syncopate.project_protocol import SetProject
from tests.unit.test_cluster_timing import TIMEOUT, Clock, add, join, make, report


def notes(cluster: Cluster, project: str) -> list[str]:
    return [line for line in cluster.logs(project, 100)["lines"] if line.startswith("[syncopate]")]


def test_actions_say_who_asked(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    add(cluster, "p")
    cluster.stop(["p"], "alice")
    cluster.start(["p"], "bob")
    cluster.restart(["p"], "alice")
    cluster.reset(["p"])  # no name known: the deed alone
    cluster.set(SetProject.model_validate({"name": "p", "command": "run", "env": {"A": "1"}}), "cy")
    cluster.set_variables(["p"], {"count": 5, "b": 1}, "alice")
    assert notes(cluster, "p") == [
        "[syncopate] stopped by alice",
        "[syncopate] started by bob",
        "[syncopate] restarted by alice",
        "[syncopate] reset",
        "[syncopate] changed by cy: command, env",
        "[syncopate] variables b, count written by alice",
    ]
    answer = cluster.logs("p", 100)
    assert len(answer["times"]) == 6 and all(t.endswith("Z") for t in answer["times"])


def test_a_dead_nodes_project_says_where_it_went_or_why_not(tmp_path: Path) -> None:
    clock = Clock()
    cluster = make(tmp_path, clock)
    join(cluster, "a")
    add(cluster, "p")  # on a, the only node
    join(cluster, "b")
    clock.now += TIMEOUT + 1
    cluster.touch(cluster.nodes["b"])  # only a falls silent
    cluster.tick()
    assert cluster.projects["p"].node == "b"
    assert notes(cluster, "p") == [f"[syncopate] moved to b: node a died (silent for {TIMEOUT:g}s)"]
    clock.now += TIMEOUT + 1  # and now b: nowhere to go
    cluster.tick()
    assert notes(cluster, "p")[-1].startswith(
        f"[syncopate] node b died (silent for {TIMEOUT:g}s); not moved: "
    )


def test_a_drained_nodes_project_says_it_is_moving_and_then_that_it_moved(tmp_path: Path) -> None:
    cluster = make(tmp_path, Clock())
    join(cluster, "a")
    add(cluster, "p")
    report(cluster, "a", "p")
    join(cluster, "b")
    cluster.drain("a")
    cluster.tick()
    assert notes(cluster, "p") == ["[syncopate] moving to b: a is drained"]
    report(cluster, "a", "p", "stopped")  # its node stopped it: the move completes
    assert cluster.projects["p"].node == "b"
    assert notes(cluster, "p")[-1] == "[syncopate] moved to b from a"
