"""Import boundaries, each checked in a fresh interpreter (STYLE.md point 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("aiohttp", "textual", "typer", "rich", "git", "psutil")


def imported_after(module: str) -> set[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in json.loads(out.stdout)}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("syncopate.states", (*HEAVY, "pydantic")),
        ("syncopate.errors", (*HEAVY, "pydantic")),
        ("syncopate.variables", (*HEAVY, "pydantic")),
        ("syncopate.validate", (*HEAVY, "pydantic")),
        ("syncopate.manager.scheduler", HEAVY),
        ("syncopate.protocol", HEAVY),
        ("syncopate.cli.main", ("aiohttp", "textual", "git", "psutil", "pydantic")),
        # The agent runs for months on small boards: no aiohttp, CLI, validation or TUI weight.
        ("syncopate.node.__main__", ("aiohttp", "typer", "pydantic", "textual", "rich")),
    ],
)
def test_module_stays_light(module: str, forbidden: tuple[str, ...]) -> None:
    loaded = imported_after(module)
    assert not loaded & set(forbidden), f"{module} pulls in {sorted(loaded & set(forbidden))}"


def test_manager_and_node_never_import_each_other() -> None:
    root = Path(__file__).resolve().parents[2] / "syncopate"
    for part, other in (("manager", "node"), ("node", "manager")):
        folder = root / part
        if not folder.exists():
            continue
        for source in folder.rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            assert f"syncopate.{other}" not in text, f"{source} imports syncopate.{other}"


def test_only_the_tui_imports_textual() -> None:
    root = Path(__file__).resolve().parents[2] / "syncopate"
    for source in root.rglob("*.py"):
        if "tui" in source.relative_to(root).parts:
            continue
        text = source.read_text(encoding="utf-8")
        assert "import textual" not in text and "from textual" not in text, source


def test_the_cli_loads_the_manager_and_the_agent_only_in_their_commands() -> None:
    # Every command is a fresh interpreter on a Pi: `syncopate project list` must not pay for
    # the manager (aiohttp server, SQLite) or the agent (gitpython, psutil).
    code = "import sys, json; import syncopate.cli.main; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not {m for m in loaded if m.startswith(("syncopate.manager", "syncopate.node"))}
