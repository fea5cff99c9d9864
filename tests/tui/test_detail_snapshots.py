"""Screenshots of Enter's full-screen detail, compared with the SVG baselines in
`snapshots/test_detail_snapshots/` (the fleet and the way it is loaded are test_snapshots'; this
module is apart only to keep that one under 400 lines). Accept a deliberate change with
`python -m pytest tests/tui/test_detail_snapshots.py --snapshot-update`."""

from __future__ import annotations

from textual.pilot import Pilot

from syncopate.tui.app import SyncopateApp
from tests.tui.test_snapshots import (
    NODES,
    PROJECTS,
    SNAPSHOT,
    URL,
    ScriptedClient,
    SnapCompare,
    fleet_app,
)

# weather-logger as the detail finds it: why it crashed, its rollout, env and a secret (their
# names only), the admin's change in its history.
DETAILED = {
    **SNAPSHOT,
    "projects": {
        **PROJECTS,
        "weather-logger": {
            **PROJECTS["weather-logger"],
            "reason": "exited with code 1 four times in a row within its grace: the sensor on "
            "/dev/i2c-1 did not answer (Remote I/O error)",
            "good-commit": "77e1d0c95a3b2f6e4d8c1a0b9f8e7d6c5b4a3f2e",
            "bad-commit": "5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d",
            "bad-reason": "it crashed within its 60s grace",
            "env": {"SENSOR_BUS": "1"},
            "secrets": {"API_TOKEN": "***"},
            "history": [{"at": "2026-11-22T10:00:00Z", "by": "admin", "fields": ["env"]}],
        },
    },
}


async def load_detailed(pilot: Pilot[None]) -> None:
    """test_snapshots' `load`, with DETAILED's weather-logger."""
    app = pilot.app
    assert isinstance(app, SyncopateApp)
    app.set_connection(True, "connected")
    app.apply(DETAILED)
    await pilot.pause()


def scripted_app() -> SyncopateApp:
    """The fleet app, its client answering `logs` with 20 fixed lines and no network."""
    app = fleet_app()
    app.client = ScriptedClient(URL, "token")
    return app


def test_detail_small(snap_compare: SnapCompare) -> None:
    """Enter on weather-logger (the last row) at 80×24: the title `project weather-logger
    crashed — Esc returns`, then status, desired, node, the whole reason wrapped in yellow, the
    URL, restarts 4, exit code 1, and below them its commits (current, good, bad and why); the
    footer `esc Back  j ↓ Down  k ↑ Up  PgDn PgUp Page`."""
    keys = [*"jjjjjj", "enter"]
    assert snap_compare(
        scripted_app(), press=keys, terminal_size=(80, 24), run_before=load_detailed
    )


def test_detail_small_end(snap_compare: SnapCompare) -> None:
    """The same detail after End: its last output lines (from the scripted client's `logs`)
    and the history, `2026-11-22T10:00:00Z (2h ago)  admin: env`."""
    keys = [*"jjjjjj", "enter", "end"]
    assert snap_compare(
        scripted_app(), press=keys, terminal_size=(80, 24), run_before=load_detailed
    )


def test_node_detail_small(snap_compare: SnapCompare) -> None:
    """Enter on the node pi-2 at 80×24: alive, its labels, cpu 100%, load 4.02, temperature
    `-` (no sensor), uptime 1h 0m, RAM and disk used of its total, the four projects on it with
    their status, and its newest command."""
    assert "pi-2" in NODES
    keys = ["shift+tab", "j", "enter"]
    assert snap_compare(
        scripted_app(), press=keys, terminal_size=(80, 24), run_before=load_detailed
    )
