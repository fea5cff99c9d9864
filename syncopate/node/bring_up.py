"""The bring-up step of one project on this node: from its checkout to its process running.

`ProjectRunner._bring_up` (runner.py) runs `bring_up` as a step of its chain. In order:
- the checkout (git_steps.prepare): cloned, made to follow a changed URL or ref, or as it is;
- the rollout (rollout_keeper.py): a bad commit is not run again, a new one starts its trial;
- the variables: starting under a new epoch, the manager's copy is written over the file;
- the run command (runcommand.py): none found fails it until a start, restart or new commit;
- a last look whether it may run at all (`ProjectRunner.may_run`): the wish can change while
  it clones or waits its turn;
- the process (supervisor.py), with its environment (`environment`) and its log, and the
  runner's watch of its health and memory (watch.py); then the start.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from syncopate import variables
from syncopate.node import git_steps, runcommand
from syncopate.node.backoff import NEVER
from syncopate.node.leftovers import MARKER, marker_value
from syncopate.node.logs import LogSink
from syncopate.node.project import Local
from syncopate.node.settings import AgentSettings
from syncopate.node.supervisor import ProjectProcess
from syncopate.states import ProjectStatus

if TYPE_CHECKING:
    from syncopate.node.runner import ProjectRunner

# Seconds before a command that could not be started (not found, not executable) is tried again.
START_RETRY = 30.0


async def bring_up(runner: ProjectRunner, local: Local) -> None:
    """Start `local`'s process, from its checkout (cloned first if need be)."""
    if not runner.is_current(local):
        return  # replaced by a new epoch while it waited: its variables are not ours
    if not await git_steps.prepare(runner, local):
        return
    checkout = runner.checkout
    await runner.rollout.before_start(local)  # a bad commit is not run again
    local.disk_at = -1e9  # measure the checkout in the next report, not a minute later
    epochs = runner.host.epochs
    if epochs.get(local.name) != local.epoch:
        # Starting under a new epoch: the manager's copy of the variables is the truth.
        variables.save(local.manager_variables, checkout / variables.FILE_NAME)
        local.variables = dict(local.manager_variables)
        epochs.set(local.name, local.epoch)
    elif not local.variables:
        local.variables = dict(local.manager_variables)
    try:
        command = runcommand.resolve(checkout, local.command)
    except runcommand.NoRunCommand as exc:
        runner.fail(local, str(exc), retry_in=NEVER)
        return
    if not runner.may_run(local):
        runner.set_status(local, ProjectStatus.STOPPED)
        return
    settings = runner.settings
    if local.sink is None:
        local.sink = LogSink(settings.logs_dir / f"{local.name}.log")
    local.started_with = (local.url, local.ref, local.command, dict(local.env))
    local.process = ProjectProcess(
        local.name,
        command,
        checkout,
        environment(local, runner.host.name, settings, checkout),
        local.sink,
        settings.records_dir,
        policy=settings.backoff,
        on_change=functools.partial(runner.process_changed, local),
        grace=settings.grace,
    )
    runner.watch(local, local.process)
    runner.set_status(local, ProjectStatus.STARTING, "")
    try:
        await local.process.start()
    except OSError as exc:
        runner.fail(local, f"cannot start {command!r}: {exc}", retry_in=START_RETRY)
        return
    local.step_failures = 0
    runner.rollout.started(local)


def environment(local: Local, node: str, settings: AgentSettings, checkout: Path) -> dict[str, str]:
    """The environment `local`'s process runs in, on node `node`, from `checkout`."""
    env = dict(os.environ)
    for key in ("SYNCOPATE_PASSWORD", "SYNCOPATE_TOKEN"):
        env.pop(key, None)
    # The project's own variables go on top of the agent's, under the SYNCOPATE_* ones.
    env.update(local.env)
    env.update(
        {
            "SYNCOPATE_PROJECT": local.name,
            "SYNCOPATE_NODE": node,
            "SYNCOPATE_VARIABLES": str((checkout / variables.FILE_NAME).resolve()),
            "SYNCOPATE_MANAGER": settings.manager,
            # The agent's own interpreter, which can `import syncopate.variables`; the
            # python3 on PATH may be the system's (with the board's GPIO libraries).
            "SYNCOPATE_PYTHON": sys.executable,
            "PYTHONUNBUFFERED": "1",
            # Inherited by everything the project starts: a later agent finds and ends
            # them even if this one dies before it recorded the start.
            MARKER: marker_value(settings.data_dir),
        }
    )
    return env
