"""The demo's parts that need no fleet: finding and packaging the examples, their repositories
(real git), and the sentence the demo prints when the fleet changes."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from syncopate.demo import DemoError
from syncopate.demo.repos import EXAMPLES_DIR, IGNORED, find_examples, make_repo
from syncopate.demo.view import Snapshot, summary

ROOT = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_every_example_file_is_package_data() -> None:
    # A wheel carries only what these patterns match; the demo must work from a wheel too.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["syncopate"]
    package = ROOT / "syncopate"
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    wanted = {
        path
        for path in EXAMPLES_DIR.rglob("*")
        if path.is_file() and not any(path.match(p) or p in path.parts for p in IGNORED)
    }
    assert wanted and wanted <= shipped, sorted(wanted - shipped)


def test_missing_or_empty_examples_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DemoError, match="missing"):
        find_examples(tmp_path / "gone")
    (tmp_path / "__pycache__").mkdir()
    with pytest.raises(DemoError, match="no example projects"):
        find_examples(tmp_path)


def test_an_example_becomes_a_repository_committed_once(tmp_path: Path) -> None:
    example = tmp_path / "examples" / "blink"
    example.mkdir(parents=True)
    (example / "run.sh").write_text("#!/bin/sh\necho on\n", encoding="utf-8")
    (example / "run.sh").chmod(0o644)  # as a wheel may leave it
    (example / "project.variables").write_text('{"left": "by a run in place"}', encoding="utf-8")
    (example / "__pycache__").mkdir()
    (example / "__pycache__" / "x.pyc").write_bytes(b"")
    repos = tmp_path / "repos"

    url = make_repo(example, repos)
    repo = repos / "blink"
    assert url == repo.resolve().as_uri()
    assert (
        git(repo, "ls-files", "-s").split()[0] == "100755"
    )  # the node runs only an executable run.sh
    assert git(repo, "ls-files").splitlines() == ["run.sh"]
    first = git(repo, "rev-parse", "HEAD")

    make_repo(example, repos)
    assert git(repo, "rev-parse", "HEAD") == first, "nothing changed: no new commit"

    (example / "README.md").write_text("# blink\n", encoding="utf-8")
    (example / "run.sh").write_text("#!/bin/sh\necho off\n", encoding="utf-8")
    make_repo(example, repos)
    assert git(repo, "rev-list", "--count", "HEAD") == "2"
    assert git(repo, "ls-files").splitlines() == ["README.md", "run.sh"]
    assert git(repo, "status", "--porcelain") == ""


def nodes(*statuses: str) -> dict[str, dict[str, Any]]:
    return {f"demo-{i}": {"status": s} for i, s in enumerate(statuses, 1)}


@pytest.mark.parametrize(
    ("snapshot", "line"),
    [
        (Snapshot(nodes("alive"), {}), "demo: 1 node alive, 0 projects running"),
        (
            Snapshot(
                nodes("alive", "alive", "dead"),
                {
                    "ticker": {"status": "cloning", "node": "demo-2"},
                    "counter": {"status": "running", "node": "demo-1"},
                    "big": {"status": "unschedulable", "node": None},
                },
            ),
            "demo: 2 of 3 nodes alive, 1 of 3 projects running: big unschedulable, "
            "counter on demo-1, ticker cloning on demo-2",
        ),
        (
            Snapshot(nodes("alive", "alive"), {"counter": {"status": "running", "node": "demo-2"}}),
            "demo: 2 nodes alive, 1 project running: counter on demo-2",
        ),
        (
            Snapshot({}, {}, problem="the manager did not answer (x)"),
            "demo: the manager did not answer (x)",
        ),
    ],
)
def test_summary(snapshot: Snapshot, line: str) -> None:
    assert summary(snapshot) == line
