"""Rollout with automatic rollback (DESIGN §12), for real: a manager, an agent, a git repository
through file://, and a project whose second commit dies at once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from syncopate.node.backoff import BackoffPolicy
from tests.gitrepos import Repo
from tests.helpers import wait_for
from tests.integration.test_agent import Fleet, alive
from tests.stores import sqlite_store as sqlite_store

PY = sys.executable
# Each version says which it is, in its output and in a persistent variable, then counts.
APP = """\
import time
from syncopate import variables

state = variables.load()
state["version"] = "{version}"
state["count"] = state.get("count", 0)
variables.save(state)
print("version {version}", flush=True)
while True:
    state["count"] += 1
    variables.save(state)
    time.sleep(0.05)
"""
# The bad one writes its version, then dies at once: a crash loop within the grace.
BROKEN = """\
from syncopate import variables

state = variables.load()
state["version"] = "2"
variables.save(state)
raise SystemExit("version 2 is broken")
"""
# Three quick exits are a crash loop: the rollback comes well within the 2 s grace.
QUICK_LOOP = BackoffPolicy(first=0.05, cap=0.2, crash_loop=3)


async def log_lines(fleet: Fleet, name: str) -> list[str]:
    async with fleet.manager.client() as ctl:
        lines: list[str] = (await ctl.logs(name, 1000))["lines"]
    return lines


async def test_a_failing_commit_is_rolled_back_and_not_retried_until_asked(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "web", {"app.py": APP.format(version="1")})
    c1 = repo.head()
    await fleet.start_agent("pi-1", backoff=QUICK_LOOP, sync_interval=0.3)
    async with fleet.manager.client() as ctl:
        await ctl.add("web", repo.url, {}, command=f"{PY} app.py", grace=2)
    # Commit 1 runs past its grace: the last good commit.
    first = await fleet.until(
        "web",
        lambda p: p["status"] == "running" and p["good-commit"] == c1,
        "commit 1 to run well for its grace",
    )
    assert first["commit"] == c1 and first["bad-commit"] is None
    assert first["persistent-variables"]["version"] == "1"

    # Commit 2 dies at once: the node goes back to commit 1 and says why.
    c2 = repo.commit({"app.py": BROKEN}, "break it")
    back = await fleet.until(
        "web",
        lambda p: (
            p["status"] == "rolled-back"
            and p["bad-commit"] == c2
            and p["commit"] == c1
            and p["persistent-variables"].get("version") == "1"
            and alive(p["pid"])
        ),
        "the node to roll back to commit 1",
    )
    assert back["good-commit"] == c1 and back["pid"] != first["pid"]
    assert back["bad-reason"].startswith("crash loop: 3 runs in a row")
    assert "version 2 is broken" in back["bad-reason"]
    assert back["reason"].startswith(f"rolled back to {c1[:7]}: {c2[:7]} crash loop:")

    async def rolled_back_in_the_log() -> list[str] | None:
        lines = await log_lines(fleet, "web")
        return lines if lines[-1:] == ["version 1"] else None

    lines = await wait_for(rolled_back_in_the_log, what="commit 1's output after the rollback")
    on_trial = f"→ running (on trial; last good {c1[:7]})"
    new_commit = f"[syncopate] new commit {c2[:7]} (break it) {on_trial}"
    assert new_commit in lines
    assert any(line.startswith(f"[syncopate] rolled back to {c1[:7]}: {c2[:7]}") for line in lines)

    # Later syncs (every 0.3 s) leave commit 1 running: it counts on, in the same process.
    count = back["persistent-variables"]["count"]
    calm = await fleet.until(
        "web",
        lambda p: p["persistent-variables"].get("count", 0) > count + 40,  # 2 s and more
        "commit 1 to keep running through several syncs",
    )
    assert (calm["status"], calm["commit"], calm["pid"]) == ("rolled-back", c1, back["pid"])
    assert (await log_lines(fleet, "web")).count("version 2 is broken") == 3

    # `rollout` shows it; `rollout --retry` tries commit 2 again, which rolls back again.
    shown = await run_cli(fleet, "project", "rollout", "web")
    assert f"bad commit  {c2[:7]}: crash loop: 3 runs in a row" in shown
    assert f"last good   {c1[:7]}" in shown and "web: rolled-back on pi-1" in shown
    answer = await run_cli(fleet, "project", "rollout", "web", "--retry")
    assert answer.strip() == f"web: its node tries {c2[:7]} again (retry 1)"

    async def rolled_back_twice() -> list[str] | None:
        lines = await log_lines(fleet, "web")
        rollbacks = [line for line in lines if line.startswith("[syncopate] rolled back to")]
        return lines if len(rollbacks) == 2 and lines[-1] == "version 1" else None

    lines = await wait_for(rolled_back_twice, timeout=20, what="a second rollback")
    assert f"[syncopate] trying {c2[:7]} again (rollout --retry)" in lines
    assert lines.count("version 2 is broken") == 6
    again = await fleet.until(
        "web",
        lambda p: p["status"] == "rolled-back" and p["commit"] == c1 and alive(p["pid"]),
        "commit 1 to run again after the retry",
    )
    assert again["bad-commit"] == c2 and again["rollout-retry"] == 1

    # Commit 3 is good: it runs, and after its grace it is the last good commit.
    c3 = repo.commit({"app.py": APP.format(version="3")}, "fix it")
    fixed = await fleet.until(
        "web",
        lambda p: (
            p["status"] == "running"
            and p["commit"] == c3
            and p["good-commit"] == c3
            and p["persistent-variables"].get("version") == "3"
        ),
        "commit 3 to run and become the last good commit",
    )
    assert fixed["bad-commit"] is None and fixed["reason"] is None
    assert alive(fixed["pid"])


async def test_the_first_commit_failing_stays_failed_and_says_why(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "broken", {"app.py": BROKEN})
    await fleet.start_agent("pi-1", backoff=QUICK_LOOP)
    async with fleet.manager.client() as ctl:
        await ctl.add("broken", repo.url, {}, command=f"{PY} app.py", grace=2)
    failed = await fleet.until("broken", lambda p: p["status"] == "failed", "it to fail")
    assert failed["reason"].startswith("crash loop: 3 runs in a row")
    assert failed["reason"].endswith("no earlier commit ran well here: nothing to roll back to")
    assert failed["good-commit"] is None and failed["bad-commit"] is None
    async with fleet.manager.client() as ctl:
        answer = await ctl.controller("rollout", projects=["broken"])
    assert answer["projects"]["broken"]["status"] == "failed"


async def test_a_pinned_commit_that_fails_just_fails(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "pinned", {"app.py": APP.format(version="1")})
    c1 = repo.head()
    c2 = repo.commit({"app.py": BROKEN}, "break it")
    await fleet.start_agent("pi-1", backoff=QUICK_LOOP)
    async with fleet.manager.client() as ctl:
        await ctl.add("pinned", repo.url, {}, command=f"{PY} app.py", grace=2, ref=c1)
    await fleet.until("pinned", lambda p: p["good-commit"] == c1, "the pinned commit 1 to run well")
    async with fleet.manager.client() as ctl:
        await ctl.set_project("pinned", ref=c2)  # pinned to the broken commit
    failed = await fleet.until(
        "pinned",
        lambda p: p["status"] == "failed" and p["commit"] == c2,
        "the pinned commit 2 to fail",
    )
    assert failed["reason"].endswith("pinned by --ref, so not rolled back")
    assert failed["bad-commit"] is None and failed["pid"] is None


async def run_cli(fleet: Fleet, *args: str) -> str:
    """`python -m syncopate ARGS` against the fleet's manager; its output (it must succeed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCOPATE_")} | {
        "SYNCOPATE_HOME": str(fleet.tmp / "home"),
        "SYNCOPATE_MANAGER": fleet.manager.url,
        "SYNCOPATE_TOKEN": fleet.manager.token,
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [PY, "-m", "syncopate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


async def test_a_new_commit_failing_its_health_check_is_rolled_back(fleet: Fleet) -> None:
    """A real health check (node/health.py): commit 2 runs but its check fails; the node goes
    back to commit 1, whose check passes, with one restart for it (not one more for the
    failed check)."""
    files = {"app.py": APP.format(version="1"), "health.txt": "ok"}
    repo = Repo.create(fleet.tmp / "repos" / "sick", files)
    c1 = repo.head()
    await fleet.start_agent("pi-1", sync_interval=0.3)
    check = {"health-cmd": "grep -qx ok health.txt", "health-interval": 0.2, "health-retries": 2}
    async with fleet.manager.client() as ctl:
        await ctl.add("sick", repo.url, {}, command=f"{PY} app.py", grace=1, **check)
        await fleet.until("sick", lambda p: p["good-commit"] == c1, "commit 1 to run well")
        await ctl.set_project("sick", grace=60)  # room to fail within commit 2's grace
    files = {"app.py": APP.format(version="2"), "health.txt": "not yet"}
    c2 = repo.commit(files, "looks fine, is not")
    back = await fleet.until(
        "sick",
        lambda p: (
            p["status"] == "rolled-back"
            and p["commit"] == c1
            and p["persistent-variables"].get("version") == "1"
            and alive(p["pid"])
        ),
        "the node to roll back to commit 1",
    )
    assert back["bad-commit"] == c2
    assert back["bad-reason"].startswith("failed its health check")
    assert back["reason"].startswith(f"rolled back to {c1[:7]}: {c2[:7]} failed its health check")

    # One restart for the rollback, not one more for the failed check: commit 1 started
    # twice in all (its first run, the rollback), and the node says it stopped twice (for
    # commit 2, for the rollback).
    # The report with the new pid can come before the one with commit 1's second line.
    async def commit_1_ran_again() -> list[str] | None:
        lines = await log_lines(fleet, "sick")
        return lines if sum(line == "version 1" for line in lines) >= 2 else None

    lines = await wait_for(commit_1_ran_again, what="commit 1's output after the rollback")
    assert sum(line == "version 1" for line in lines) == 2, lines
    assert sum(line == "[syncopate] stopped" for line in lines) == 2, lines
    assert "restarting" not in back["bad-reason"] and "unhealthy: " not in back["bad-reason"]


async def test_a_restarted_agent_remembers_the_good_and_the_bad_commit(fleet: Fleet) -> None:
    repo = Repo.create(fleet.tmp / "repos" / "web", {"app.py": APP.format(version="1")})
    c1 = repo.head()
    await fleet.start_agent("pi-1", backoff=QUICK_LOOP, sync_interval=0.3)
    async with fleet.manager.client() as ctl:
        await ctl.add("web", repo.url, {}, command=f"{PY} app.py", grace=1)
    await fleet.until("web", lambda p: p["good-commit"] == c1, "commit 1 to run well")
    c2 = repo.commit({"app.py": BROKEN}, "break it")
    await fleet.until(
        "web",
        lambda p: p["status"] == "rolled-back" and p["bad-commit"] == c2,
        "the rollback",
    )
    record = fleet.tmp / "nodes" / "pi-1" / "rollouts" / "web.json"
    assert f'"bad": "{c2}"' in record.read_text(encoding="utf-8")

    await fleet.stop_agent("pi-1")
    await fleet.start_agent("pi-1", backoff=QUICK_LOOP, sync_interval=0.3)
    back = await fleet.until(
        "web",
        lambda p: p["status"] == "rolled-back" and alive(p["pid"]) and p["commit"] == c1,
        "commit 1 to run again under the restarted agent, still rolled back",
    )
    count = back["persistent-variables"].get("count", 0)
    calm = await fleet.until(
        "web",
        lambda p: p["persistent-variables"].get("count", 0) > count + 40,
        "commit 1 to keep running through several syncs",
    )
    assert (calm["commit"], calm["pid"], calm["bad-commit"]) == (c1, back["pid"], c2)
    assert (await log_lines(fleet, "web")).count("version 2 is broken") == 3
