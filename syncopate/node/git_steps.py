"""The git side of one project's steps on this node: its checkout, before a start and after.

`ProjectRunner` (runner.py) keeps the chain and the status; these are the parts of its steps
that move the project's checkout (through git_sync.py):
- `prepare`, before every start (bring_up.py): clone it if there is none, follow a URL or ref
  that `set` changed in place, or read the commit it is at;
- `follow`: point it at the project's URL and ref (also the restart after `set`);
- `sync`, the sync step: fetch and move to the ref's newest commit, never to the bad commit a
  rollback left (rollout_keeper.py); a new commit is tried even after a crash loop.
A failed fetch is only logged: the project goes on with the commit it has, and the next sync
tries again. A failed clone fails the project, tried again after CLONE_RETRY.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from syncopate.node import git_sync
from syncopate.node.project import Local
from syncopate.states import ProjectStatus

if TYPE_CHECKING:
    from syncopate.node.runner import ProjectRunner

log = logging.getLogger("syncopate.node")

CLONE_RETRY = 30.0  # seconds before a failed clone is tried again


async def prepare(runner: ProjectRunner, local: Local) -> bool:
    """Make the checkout the one `local` starts from, and `local.commit` its commit.

    False when it could not be cloned: the project is failed, tried again after CLONE_RETRY."""
    checkout = runner.checkout
    if not git_sync.is_checkout(checkout):
        runner.set_status(local, ProjectStatus.CLONING, "")
        if checkout.exists():
            await asyncio.to_thread(shutil.rmtree, checkout)
        try:
            local.commit = await asyncio.to_thread(git_sync.clone, local.url, local.ref, checkout)
        except git_sync.GitError as exc:
            runner.fail(local, f"clone failed: {exc}", retry_in=CLONE_RETRY)
            return False
    elif (
        local.started_with is not None and local.started_with[1] != local.ref
    ) or await asyncio.to_thread(git_sync.origin_url, checkout) != local.url:
        await follow(local, checkout)  # its URL or ref was changed in place
    else:
        local.commit = await asyncio.to_thread(git_sync.head_commit, checkout)
    return True


async def follow(local: Local, checkout: Path) -> None:
    """Point `checkout` at the project's URL and ref, should `set` have changed them."""
    try:
        local.commit, _ = await asyncio.to_thread(
            git_sync.update, checkout, local.ref, url=local.url, retarget=True
        )
    except (git_sync.GitError, OSError) as exc:
        log.warning("%s: fetch failed: %s", local.name, exc)


async def sync(runner: ProjectRunner, local: Local) -> bool:
    """Fetch the ref's newest commit into the checkout (never the bad one a rollback left).

    True when the commit is new and the process running the old one is to be restarted."""
    if not runner.is_current(local):
        return False
    started = local.started_with
    if started is not None and started[:2] != (local.url, local.ref):
        return False  # `set` changed them: its restart step follows them, once

    try:
        commit, changed = await asyncio.to_thread(
            git_sync.update, runner.checkout, local.ref, avoid=runner.rollout.avoid
        )
    except (git_sync.GitError, OSError) as exc:
        log.warning("%s: fetch failed: %s", local.name, exc)
        return False
    local.commit = commit
    if not changed:
        return False
    log.info("%s: new commit %s", local.name, commit[:12])
    local.forgive()  # a new commit is tried even after a crash loop
    return local.process is not None and local.process.status != ProjectStatus.STOPPED
