"""What `syncopate demo` prints before the TUI covers the terminal (the token, the pids) is
shown inside the TUI: its `?` screen, open from the start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from textual.widgets import Static

from syncopate.demo.fleet import Child, Fleet
from syncopate.demo.run import tui_notes
from syncopate.tui.app import SyncopateApp
from syncopate.tui.screens import HelpScreen
from tests.tui.test_pilot import text_of, until


def test_the_notes_name_the_token_the_env_file_and_every_pid(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path, 2)
    fleet.url, fleet.token = "http://127.0.0.1:8765", "tok-123"
    done = subprocess.Popen([sys.executable, "-c", "pass"])  # a real pid, ended at once
    done.wait()
    fleet.manager = Child("manager", tmp_path / "manager.log", done)
    fleet.agents = [Child(n, tmp_path / f"{n}.log", done) for n in fleet.node_names]
    text = "\n".join(tui_notes(fleet))
    assert "export SYNCOPATE_MANAGER=http://127.0.0.1:8765" in text
    assert "export SYNCOPATE_TOKEN=tok-123" in text
    assert f". {tmp_path / 'env'}" in text
    assert f"manager pid {done.pid}" in text
    assert f"demo-1 {done.pid}, demo-2 {done.pid}" in text


async def test_started_with_notes_the_tui_opens_on_them() -> None:
    notes = ["export SYNCOPATE_TOKEN=tok-123", "manager pid 41"]
    app = SyncopateApp("http://127.0.0.1:9", "token", live=False, notes=notes)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, HelpScreen) else None, "help"
        )
        shown = " ".join(text_of(w) for w in screen.query(Static))
        assert "SYNCOPATE_TOKEN=tok-123" in shown and "manager pid 41" in shown
        assert "This demo" in shown
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "the fleet")
        await pilot.press("question_mark")
        screen = await until(
            pilot, lambda: app.screen if isinstance(app.screen, HelpScreen) else None, "help"
        )
        assert "tok-123" in " ".join(text_of(w) for w in screen.query(Static)), "again on ?"


async def test_without_notes_the_tui_opens_on_the_fleet() -> None:
    app = SyncopateApp("http://127.0.0.1:9", "token", live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)
