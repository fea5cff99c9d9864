"""Screenshots of the keys from issue 16, at 80×24, compared with the SVG baselines in
`snapshots/test_snapshots_keys/` (the fixed fleet and frozen clock of test_snapshots.py).

Accept deliberate changes with
`python -m pytest tests/tui/test_snapshots_keys.py --snapshot-update`, after looking.
"""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import RichLog

from syncopate.tui.app import SyncopateApp
from syncopate.tui.screens import LogsScreen
from tests.tui.test_pilot import until
from tests.tui.test_snapshots import URL, ScriptedClient, SnapCompare, fleet_app, frozen, load

SMALL = (80, 24)
DEMO_NOTES = [
    "In another terminal (or `. /tmp/syncopate-demo-x1/env`):",
    f"export SYNCOPATE_MANAGER={URL}",
    "export SYNCOPATE_TOKEN=Jx3vQk9w2PZrN0aT5mYc8LbE1sHdG7uF4iKoW6qRtVy",
    "manager pid 4101 · node pids: demo-1 4102, demo-2 4103, demo-3 4104",
    "logs in /tmp/syncopate-demo-x1/logs · Ctrl-C or q stops the demo",
]


def test_sorted_by_memory_small(snap_compare: SnapCompare) -> None:
    """`M` twice on the projects table: sorted by RAM, largest first (air-quality's 182M on
    top), the RAM header marked `RAM↓`; the nodes table keeps its order, unmarked."""
    keys = ["M", "M"]
    assert snap_compare(fleet_app(), press=keys, terminal_size=SMALL, run_before=load)


async def toasts(pilot: Pilot[None]) -> None:
    await load(pilot)
    for n in range(1, 5):
        pilot.app.notify(f"asked pi-2 to restart air-quality ({n})", title=f"restart {n}")
    pilot.app.notify("node pi-3 is dead", title="drain failed", severity="error", timeout=8)
    await pilot.pause()


def test_toasts_small(snap_compare: SnapCompare) -> None:
    """Five toasts in a row: only the last two show (restart 4, and the error "drain failed"),
    bottom right over the detail pane, above the footer; every table row stays visible."""
    assert snap_compare(fleet_app(), terminal_size=SMALL, run_before=toasts)


async def filtered_and_paused(pilot: Pilot[None]) -> None:
    await load(pilot)
    app = pilot.app
    await pilot.press("l")
    screen = await until(
        pilot, lambda: app.screen if isinstance(app.screen, LogsScreen) else None, "logs"
    )
    await until(pilot, lambda: len(screen.query_one(RichLog).lines) == 20, "the kept lines")
    await pilot.press("slash", *":30", "enter", "p")
    times = ["2026-11-22T12:00:00Z", "2026-11-22T12:00:30Z", "2026-11-22T12:01:30Z"]
    screen.take(4200, ["pm2.5=7.1", "pm2.5=7.2", "pm2.5=7.0"], times)
    await pilot.pause()


def test_logs_filtered_and_paused_small(snap_compare: SnapCompare) -> None:
    """`l`, `/` `:30` Enter, `p`, then three new lines: the ten kept lines at :30 seconds, the
    title "lines with “:30” — paused, 2 new line(s) wait"; the state line "paused (on pi-2)",
    the keys right of it."""
    app = fleet_app()
    app.client = ScriptedClient(URL, "token")
    assert snap_compare(app, terminal_size=SMALL, run_before=filtered_and_paused)


def test_failed_project_small(snap_compare: SnapCompare) -> None:
    """`j` `j` to door-sensor, failed: in the detail pane its reason (the repository not found,
    in yellow) comes right after its status, above desired, node and url."""
    keys = ["j", "j"]
    assert snap_compare(fleet_app(), press=keys, terminal_size=SMALL, run_before=load)


def test_forget_alive_node_toast_small(snap_compare: SnapCompare) -> None:
    """Tab to the nodes table, `j` to pi-2 (alive), `F`: the warning toast shows its whole
    sentence, "pi-2 is alive: only a dead node can be forgotten (drain it and stop its agent
    first)", on two lines above the footer."""
    keys = ["tab", "j", "F"]
    assert snap_compare(fleet_app(), press=keys, terminal_size=SMALL, run_before=load)


def test_forget_dialog_small(snap_compare: SnapCompare) -> None:
    """Tab, `j` `j` to pi-3 (dead, no projects), `F`: the dialog "Forget pi-3?" says "it has
    no projects" (not "its 0 project(s) move"), Cancel focused."""
    keys = ["tab", "j", "j", "F"]
    assert snap_compare(fleet_app(), press=keys, terminal_size=SMALL, run_before=load)


def test_demo_help_small(snap_compare: SnapCompare) -> None:
    """The TUI as `syncopate demo` starts it: the `?` screen open, titled "This demo, and the
    keys", beginning with what the demo printed before the TUI covered it (the two exports
    with the token, the manager's and the nodes' pids, the logs); the keys scroll below."""
    app = SyncopateApp(URL, "token", live=False, clock=frozen, notes=DEMO_NOTES)
    assert snap_compare(app, terminal_size=SMALL, run_before=load)
