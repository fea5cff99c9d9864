"""Import boundaries, each checked in a fresh interpreter (STYLE.md point 6)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("aiohttp", "textual", "typer", "rich", "git", "psutil")
ROOT = Path(__file__).resolve().parents[2] / "syncopate"


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
        ("syncopate.node.rollout", (*HEAVY, "pydantic")),  # the pure rollout machine
        ("syncopate.protocol", HEAVY),
        ("syncopate.cli.main", ("aiohttp", "textual", "git", "psutil", "pydantic")),
        # The TUI and the shared formats stand without the command line.
        ("syncopate.tui.app", ("typer", "git", "psutil", "pydantic")),
        ("syncopate.render", ("typer", "textual", "aiohttp", "pydantic")),
        ("syncopate.feed", ("typer", "textual", "aiohttp", "pydantic")),
        ("syncopate.command_results", ("typer", "textual", "aiohttp", "pydantic")),
        ("syncopate.demo.run", ("typer", "textual")),
        # The agent runs for months on small boards: no aiohttp, CLI, validation or TUI weight.
        ("syncopate.node.__main__", ("aiohttp", "typer", "pydantic", "textual", "rich")),
    ],
)
def test_module_stays_light(module: str, forbidden: tuple[str, ...]) -> None:
    loaded = imported_after(module)
    assert not loaded & set(forbidden), f"{module} pulls in {sorted(loaded & set(forbidden))}"


def test_manager_and_node_never_import_each_other() -> None:
    for part, other in (("manager", "node"), ("node", "manager")):
        folder = ROOT / part
        if not folder.exists():
            continue
        for source in folder.rglob("*.py"):
            text = source.read_text(encoding="utf-8")
            assert f"syncopate.{other}" not in text, f"{source} imports syncopate.{other}"


def imports_of(source: Path) -> set[str]:
    """Every module a source file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            # `from syncopate import cli` imports syncopate.cli
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def area_of(source: Path, root: Path) -> str:
    """`cli`, `tui`, or `` for a module outside both."""
    part = source.relative_to(root).parts[0]
    return part if part in ("cli", "tui") else ""


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def boundary_breaches(root: Path) -> list[str]:
    """Only cli imports typer, only tui imports textual, and tui does not import cli."""
    breaches = []
    for source in sorted(root.rglob("*.py")):
        area = area_of(source, root)
        for module in sorted(imports_of(source)):
            if within(module, "typer") and area != "cli":
                breaches.append(f"{source} imports {module}: only syncopate.cli imports typer")
            if within(module, "textual") and area != "tui":
                breaches.append(f"{source} imports {module}: only syncopate.tui imports textual")
            if within(module, "syncopate.cli") and area == "tui":
                breaches.append(f"{source} imports {module}: the TUI does not use the CLI")
    return breaches


def test_typer_stays_in_the_cli_and_textual_in_the_tui() -> None:
    assert boundary_breaches(ROOT) == []


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("tui/bad.py", "from syncopate.cli.render import short"),
        ("tui/bad.py", "def f():\n    from syncopate import cli"),
        ("tui/bad.py", "import typer"),
        ("render.py", "import typer.core"),
        ("demo/bad.py", "def f():\n    from textual.app import App"),
        ("cli/bad.py", "import textual"),
    ],
)
def test_the_boundary_check_sees_a_breach(tmp_path: Path, path: str, code: str) -> None:
    source = tmp_path / path
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(code + "\n", encoding="utf-8")
    assert boundary_breaches(tmp_path)


def test_the_cli_loads_the_manager_and_the_agent_only_in_their_commands() -> None:
    # Every command is a fresh interpreter on a Pi: `syncopate project list` must not pay for
    # the manager (aiohttp server, SQLite) or the agent (gitpython, psutil).
    code = "import sys, json; import syncopate.cli.main; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not {m for m in loaded if m.startswith(("syncopate.manager", "syncopate.node"))}
