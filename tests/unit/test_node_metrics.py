"""A node's metrics (cpu, load, temperature, uptime): measured on the node, checked at the
manager's door, kept per node, shown by `node show`, the TUI and /metrics."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from syncopate.manager.answers import node_gauges, node_info
from syncopate.manager.cluster_state import ClusterState
from syncopate.manager.metrics import Metrics
from syncopate.manager.records import NodeRecord
from syncopate.metrics_text import cpu_cell, duration, metrics_text
from syncopate.node.probes import node_metrics, temperature
from syncopate.protocol import NodeMetrics, StatusRequest, describe_validation_error
from syncopate.render import node_detail
from syncopate.states import NodeStatus
from syncopate.tui.rows import NODE_COLUMNS, node_row


def zone(thermal: Path, index: int, text: str) -> None:
    folder = thermal / f"thermal_zone{index}"
    folder.mkdir(parents=True)
    (folder / "temp").write_text(text)


# the node's probes ----------------------------------------------------------------------------
def test_temperature_is_the_hottest_zone_in_degrees(tmp_path: Path) -> None:
    zone(tmp_path, 0, "48312\n")  # millidegrees, as the kernel writes them
    zone(tmp_path, 1, "51000\n")
    (tmp_path / "cooling_device0").mkdir()  # not a thermal zone
    assert temperature(tmp_path) == 51.0


def test_unreadable_or_garbled_zones_are_skipped(tmp_path: Path) -> None:
    zone(tmp_path, 0, "not a number\n")
    zone(tmp_path, 1, "")
    (tmp_path / "thermal_zone2").mkdir()  # a zone without a temp file
    zone(tmp_path, 3, "-5250\n")  # an outdoor sensor in winter
    assert temperature(tmp_path) == -5.2


def test_no_thermal_zones_means_no_temperature(tmp_path: Path) -> None:
    assert temperature(tmp_path) is None
    assert temperature(tmp_path / "missing") is None


def test_node_metrics_are_what_the_manager_accepts(tmp_path: Path) -> None:
    zone(tmp_path, 0, "45000\n")
    node_metrics(tmp_path)  # the first CPU figure means nothing: it starts the count
    measured = node_metrics(tmp_path)
    assert set(measured) == {"cpu", "load", "temperature", "uptime"}
    assert measured["temperature"] == 45.0
    assert 0 <= measured["cpu"] <= 100
    assert measured["load"] is not None and measured["load"] >= 0
    assert measured["uptime"] > 0
    assert NodeMetrics.model_validate(measured).model_dump() == measured
    assert node_metrics(tmp_path / "none")["temperature"] is None


# the manager's door ---------------------------------------------------------------------------
def poll(metrics: Any) -> dict[str, Any]:
    return {"name": "pi-1", "access-token": "t", "metrics": metrics}


@pytest.mark.parametrize(
    ("metrics", "says"),
    [
        ({"cpu": 100.5}, "metrics.cpu"),
        ({"cpu": -1}, "metrics.cpu"),
        ({"cpu": True}, "not true or false"),
        ({"load": -0.1}, "metrics.load"),
        ({"load": "high"}, "metrics.load"),
        ({"temperature": -300}, "metrics.temperature"),
        ({"temperature": 5000}, "metrics.temperature"),
        ({"uptime": -3}, "metrics.uptime"),
        ({"uptime": float("nan")}, "metrics.uptime"),
        ({"uptime": [1]}, "metrics.uptime"),
        ("busy", "metrics"),
        ([12, 0.5], "metrics"),
    ],
)
def test_bad_metrics_are_refused_with_the_field(metrics: Any, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        StatusRequest.model_validate(poll(metrics))
    assert says in describe_validation_error(caught.value)


def test_metrics_are_optional_and_partial() -> None:
    assert StatusRequest.model_validate({"name": "pi-1", "access-token": "t"}).metrics is None
    given = StatusRequest.model_validate(poll({"cpu": 3, "future-figure": 1})).metrics
    assert given is not None and given.model_dump() == {
        "cpu": 3.0,
        "load": None,
        "temperature": None,
        "uptime": None,
    }
    nothing_known = dict.fromkeys(("cpu", "load", "temperature", "uptime"))
    assert StatusRequest.model_validate(poll(nothing_known)).metrics == NodeMetrics()
    # A form carries the object as JSON text.
    form = StatusRequest.model_validate(poll('{"cpu": 7.5, "temperature": null}')).metrics
    assert form is not None and form.cpu == 7.5


# the manager's answers ------------------------------------------------------------------------
def cluster(*nodes: NodeRecord) -> ClusterState:
    state = ClusterState()
    for node in nodes:
        state.nodes[node.name] = node
    return state


def test_nodes_answer_and_gauges_carry_the_latest_metrics() -> None:
    figures = {"cpu": 12.5, "load": 0.5, "temperature": None, "uptime": 3600.0}
    busy = NodeRecord("pi-1", "h", 1000, 1000, metrics=figures)
    dead = NodeRecord("pi-2", "h", 1000, 1000, status=NodeStatus.DEAD, metrics=figures)
    seed = NodeRecord("pi-3", "h", 1000, 1000)
    state = cluster(busy, dead, seed)
    assert node_info(state, busy)["metrics"] == figures
    assert node_info(state, seed)["metrics"] is None
    gauges = node_gauges(state)
    assert gauges["syncopate_node_cpu_percent"] == {(("node", "pi-1"),): 12.5}
    assert gauges["syncopate_node_load1"] == {(("node", "pi-1"),): 0.5}
    assert gauges["syncopate_node_uptime_seconds"] == {(("node", "pi-1"),): 3600.0}
    assert gauges["syncopate_node_temperature_celsius"] == {}  # no sensor: no series
    text = Metrics().render(gauges)
    assert 'syncopate_node_cpu_percent{node="pi-1"} 12.5\n' in text
    assert "pi-2" not in text and "pi-3" not in text


def test_label_values_are_escaped() -> None:
    text = Metrics().render({"g": {(("node", 'a"b\\c\nd'),): 1.0}})
    assert 'g{node="a\\"b\\\\c\\nd"} 1\n' in text


# how they read --------------------------------------------------------------------------------
def test_metrics_text_leaves_out_what_is_unknown() -> None:
    full = {"cpu": 12.4, "load": 0.5, "temperature": 48.26, "uptime": 3 * 86400 + 4 * 3600 + 5}
    assert metrics_text(full) == "cpu 12%  load 0.50  48.3 °C  up 3d 4h"
    assert metrics_text({"cpu": 100.0, "temperature": None, "uptime": 59}) == "cpu 100%  up 59s"
    assert metrics_text(None) == "-"
    assert metrics_text({"cpu": "x"}) == "-"


def test_node_detail_has_a_metrics_row() -> None:
    console = Console(width=100, record=True, color_system=None)
    figures = {"cpu": 3.0, "load": 0.12, "temperature": 40.0, "uptime": 7200.0}
    console.print(node_detail({"name": "pi-1", "status": "alive", "metrics": figures}))
    assert "metrics       cpu 3%  load 0.12  40.0 °C  up 2h 0m" in console.export_text()


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (59.9, "59s"), (60, "1m"), (3599, "59m"), (3660, "1h 1m"), (90000, "1d 1h"),
     (-1, "-"), (None, "-"), (True, "-")],
)  # fmt: skip
def test_duration(seconds: object, shown: str) -> None:
    assert duration(seconds) == shown


def test_cpu_cell_fits_four_characters() -> None:
    assert cpu_cell({"cpu": 100.0}) == "100%"
    assert cpu_cell({"cpu": 7.4}) == "7%"
    assert cpu_cell({"cpu": None}) == "-"
    assert cpu_cell(None) == "-"


def test_tui_nodes_table_has_a_cpu_column_last() -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    alive = {"status": "alive", "metrics": {"cpu": 99.6}}
    assert NODE_COLUMNS[-1].label == "CPU"
    assert str(node_row("pi-1", alive, now)[-1]) == "100%"
    assert str(node_row("pi-1", {**alive, "status": "dead"}, now)[-1]).strip() == "-"
    assert str(node_row("pi-1", {"status": "alive"}, now)[-1]).strip() == "-"
    # The nodes table fits 80 columns: each column padded by 2, inside a border.
    assert sum(c.width + 2 for c in NODE_COLUMNS) + 2 <= 80
