"""What the full-screen detail says, read without a screen (syncopate/tui/detail_text.py)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from rich.console import Console, RenderableType

from syncopate.tui.detail_text import full_detail
from syncopate.tui.model import FleetModel
from tests.tui.test_snapshots import NODES, PROJECTS, SNAPSHOT

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def plain(renderable: RenderableType, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def fleet(**projects: dict[str, object]) -> FleetModel:
    model = FleetModel()
    model.apply({**SNAPSHOT, "projects": {**PROJECTS, **projects}})
    return model


def test_env_and_secrets_show_by_name_only() -> None:
    info = {**PROJECTS["air-quality"], "env": {"MODE": "fast-and-loud"}, "secrets": {"KEY": "***"}}
    text = plain(full_detail(fleet(**{"air-quality": info}), "projects", "air-quality", None, NOW))
    environment = text.split("environment (names only)")[1].split("placement")[0]
    assert environment.split() == ["MODE", "KEY", "(secret)"]
    assert "fast-and-loud" not in text and "***" not in text


def test_a_long_reason_wraps_whole_at_80_columns() -> None:
    reason = " ".join(f"word{i}" for i in range(40))
    info = {**PROJECTS["door-sensor"], "reason": reason}
    text = plain(full_detail(fleet(**{"door-sensor": info}), "projects", "door-sensor", None, NOW))
    assert all(len(line) <= 80 for line in text.splitlines())
    assert " ".join(text.split()).count(reason) == 1


def test_the_output_fetched_replaces_the_reports_lines() -> None:
    model = fleet()
    reported = plain(full_detail(model, "projects", "air-quality", None, NOW))
    assert "last output (3 lines)" in reported and "co2=611" in reported
    fetched = plain(full_detail(model, "projects", "air-quality", ["one", "two"], NOW))
    assert "last output (2 lines)" in fetched and "co2=611" not in fetched


def test_a_dead_nodes_last_figures_are_not_shown_as_current() -> None:
    alive = plain(full_detail(fleet(), "nodes", "pi-1", None, NOW))
    assert "47.2 °C" in alive and "3d 1h" in alive
    dead = {**NODES["pi-3"]}
    assert dead["status"] == "dead" and dead["metrics"]["temperature"] == 47.2
    text = plain(full_detail(fleet(), "nodes", "pi-3", None, NOW))
    assert "47.2" not in text and "temperature   -" in text


def test_a_removed_row_says_it_is_gone() -> None:
    text = plain(full_detail(fleet(), "projects", "no-such-project", None, NOW))
    assert "no-such-project is gone" in text
