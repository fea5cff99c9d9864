"""The example projects, and local git repositories made from them for the demo's nodes to clone.

The examples ship inside the package (`syncopate/examples/`, package data), so they are found
the same way from a source checkout and from an installed wheel; `examples/` at the top of the
source tree is a link to them.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

from syncopate.demo import DemoError

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
GIT_TIMEOUT = 60.0
# The user's git settings must not get in the way: no identity needed, no signing prompt,
# no commit hooks, the same branch name everywhere.
GIT_OPTIONS = (
    "-c",
    "user.name=Syncopate demo",
    "-c",
    "user.email=demo@syncopate.invalid",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
)
# Never copied into a demo repository: what running an example in place leaves behind.
IGNORED = ("__pycache__", "*.pyc", "project.variables", ".project.variables*", ".git")


def find_examples(root: Path = EXAMPLES_DIR) -> list[Path]:
    """Every example project (a folder of `root`), sorted by name."""
    if not root.is_dir():
        raise DemoError(
            f"the example projects are missing ({root} is not there); reinstall syncopate"
        )
    found = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not found:
        raise DemoError(f"no example projects in {root}; reinstall syncopate")
    return found


def require_git() -> str:
    """The path of git; a DemoError saying to install it when there is none."""
    found = shutil.which("git")
    if found is None:
        raise DemoError(
            "git is not installed, and the nodes clone their projects with it; "
            "install git (e.g. `sudo apt install git`) and run the demo again"
        )
    return found


def make_repo(example: Path, repos: Path) -> str:
    """Copy `example` into `repos/<name>` and commit it there; the repository's file:// URL.

    Run again on the same folder (`demo --dir`), it commits only what changed, so the nodes
    keep their checkouts, or pick up an edited example as a new commit.
    """
    dest = repos / example.name
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.iterdir():
        if old.name == ".git":
            continue
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
    shutil.copytree(example, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*IGNORED))
    script = dest / "run.sh"
    if script.is_file():
        # A wheel does not keep file modes, and the nodes only run a run.sh that is executable.
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    if not (dest / ".git").exists():
        _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    if _git(dest, "status", "--porcelain"):
        _git(dest, "commit", "-q", "--no-verify", "-m", f"{example.name}, from the Syncopate demo")
    return dest.resolve().as_uri()


def _git(cwd: Path, *args: str) -> str:
    # GIT_DIR and friends (set when the demo runs inside a git hook) would point git elsewhere.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        done = subprocess.run(
            ["git", *GIT_OPTIONS, *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DemoError(f"git {args[0]} in {cwd} failed: {exc}") from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        reason = said[-1] if said else f"exit status {done.returncode}"
        raise DemoError(f"git {args[0]} in {cwd} failed: {reason}")
    return done.stdout.strip()
