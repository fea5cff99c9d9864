"""What a whole `syncopate` run imports, as a person's shell starts it (a fresh interpreter).

`node join` on a Pi and `project list` in a script must not pay for the TUI, the manager or
pydantic (benchmarks/cli.py times them); `tui` must import textual, so the probe can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import ManagerProcess, manager_process

# Runs the CLI's entry point in this interpreter and writes the modules it imported to
# $IMPORTS_OUT: at exit; when `node join` exec's the agent (the agent is another program);
# or when `tui` first imports textual (it would take the terminal over).
PROBE = """
import json, os, sys

def record(stopped_at=None):
    with open(os.environ["IMPORTS_OUT"], "w") as out:
        json.dump({"modules": sorted(sys.modules), "stopped_at": stopped_at}, out)

class StopAtTextual:
    def find_spec(self, name, path=None, target=None):
        if name == "textual":
            record(name)
            os._exit(0)
        return None

def execve(*args):
    record("execve")
    os._exit(0)

sys.meta_path.insert(0, StopAtTextual())
os.execve = execve
import atexit
atexit.register(record)
sys.argv[0] = "syncopate"
from syncopate.cli.main import run
run()
"""

# Packages (and syncopate's own parts) that neither command has any use for.
NEVER = ("textual", "aiohttp", "git", "psutil", "syncopate.tui", "syncopate.manager")


def imports(tmp: Path, *args: str, env: dict[str, str]) -> tuple[set[str], str | None]:
    """The modules a `syncopate ARGS` run imported, and where the probe stopped it (if it did)."""
    out = tmp / "imports.json"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        env=env | {"IMPORTS_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    found = json.loads(out.read_text())
    return set(found["modules"]), found["stopped_at"]


def heavy(modules: set[str], never: tuple[str, ...] = NEVER) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in never))


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    with manager_process(tmp_path_factory.mktemp("imports") / "manager") as running:
        running.start()
        yield running


@pytest.fixture
def env(manager: ManagerProcess, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")}
    return clean | {
        "SYNCOPATE_HOME": str(tmp_path / "home"),
        "SYNCOPATE_MANAGER": manager.url,
        "SYNCOPATE_TOKEN": manager.token,
    }


def test_project_list_imports_no_tui_manager_or_pydantic(
    manager: ManagerProcess, env: dict[str, str], tmp_path: Path
) -> None:
    add = ["project", "add", "one", "https://example.invalid/x.git", "--command", "true"]
    assert subprocess.run([sys.executable, "-m", "syncopate", *add], env=env).returncode == 0
    modules, _ = imports(tmp_path, "project", "list", env=env)
    assert "syncopate.render" in modules  # it did print the table
    # Typer's pydantic coercion is skipped for values that need none (cli/coercion.py).
    assert heavy(modules, (*NEVER, "pydantic")) == []
    # Given as options, the manager and token are strings: still no pydantic.
    explicit = {k: v for k, v in env.items() if k not in ("SYNCOPATE_MANAGER", "SYNCOPATE_TOKEN")}
    modules, _ = imports(
        tmp_path, "project", "list", "--json", "--manager", manager.url, "--token",
        manager.token, env=explicit,
    )  # fmt: skip
    assert heavy(modules, (*NEVER, "pydantic")) == []
    # Only the command that runs is imported: not the node, command or logs modules.
    assert not {"syncopate.cli.node", "syncopate.cli.command", "syncopate.cli.logs"} & modules


def test_node_join_imports_neither_the_tui_nor_the_manager(
    env: dict[str, str], tmp_path: Path
) -> None:
    modules, _ = imports(tmp_path, "node", "join", "--help", env=env)
    assert "syncopate.cli.node" in modules and heavy(modules) == []
    join = ["node", "join", "http://127.0.0.1:9", "--password", "pw"]
    modules, stopped_at = imports(tmp_path, *join, "--data-dir", str(tmp_path / "node"), env=env)
    assert stopped_at == "execve"  # it got as far as starting the agent
    # (Its float and path options do go through Typer's pydantic coercion: once, before exec.)
    assert heavy(modules) == [] and "syncopate.client" not in modules


def test_tui_does_import_textual(env: dict[str, str], tmp_path: Path) -> None:
    modules, stopped_at = imports(tmp_path, "tui", env=env)
    assert stopped_at == "textual"
    assert "syncopate.tui" in modules
