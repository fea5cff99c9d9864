"""One project's lifecycle on this node: clone, start, supervise, stop, remove, report.

The agent (`agent.py`) keeps one `ProjectRunner` per project name and hands it work: bring the
project up, stop it, restart it, fetch its repository, retire or remove it. Each of these is a
*step*, and a project's steps run strictly one after another (the chain), whatever `Local`
(epoch) each is for: a new epoch's start waits for the old one's stop, a removal for a retire.
When the last step of the chain ends, the runner converges again on the project's current
`Local`, since the wish may have changed meanwhile.

The invariants the faults tests hold us to:
- one step at a time per project (`_spawn`);
- no step starts a replaced epoch, a project the manager wants stopped, an exclusive project
  past its lease, or anything once the agent leaves (`_may_run`, checked right before a start);
- a crash loop fails the project until start, restart or a new commit (`_process_changed`),
  unless it is a new commit on trial: then the last good commit runs again (rollout_keeper.py);
- a step that raises fails the project and retries it after the STEP_RETRY backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import shutil
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from syncopate import variables
from syncopate.node import git_sync, probes, report, runcommand
from syncopate.node.backoff import BackoffPolicy, restart_delay
from syncopate.node.leftovers import MARKER, marker_value
from syncopate.node.logs import LogSink
from syncopate.node.project import Local, StartedEpochs
from syncopate.node.rollout_keeper import RolloutKeeper
from syncopate.node.settings import AgentSettings
from syncopate.node.supervisor import ProjectProcess
from syncopate.node.watch import ProjectWatch
from syncopate.states import ProjectStatus, check_project_transition, project_transition_allowed

log = logging.getLogger("syncopate.node")

DISK_PROBE_EVERY = 60.0  # seconds; SD cards are slow
# A step that raised (a full disk, a permission error, git gone) is retried after this backoff:
# never at once, so a lasting fault cannot make the agent spin.
STEP_RETRY = BackoffPolicy(first=1.0, factor=2.0, cap=60.0)
CLONE_RETRY = 30.0  # seconds before a failed clone is tried again
NEVER = float("inf")

Step = Callable[[Local], Coroutine[Any, Any, None]]


class RunnerHost(Protocol):
    """What a runner asks of its agent."""

    settings: AgentSettings
    clock: Callable[[], float]
    name: str  # the node's name, for the project's environment
    leaving: bool  # set when the agent leaves: nothing starts any more
    steps: dict[asyncio.Task[None], str]  # every step under way, of every project
    epochs: StartedEpochs

    def current(self, project: str) -> Local | None:
        """The `Local` the node holds for `project` now (None once it is not assigned here)."""

    def converge(self, local: Local) -> None:
        """Converge `local` through the agent's runner of its project."""

    def report_soon(self) -> None:
        """Something changed: send the reports now rather than at the next interval."""

    def runner_idle(self, runner: ProjectRunner) -> None:
        """`runner` has no step under way and its project is not assigned here."""


class ProjectRunner:
    """The steps of project `name` on this node, one at a time."""

    def __init__(self, name: str, host: RunnerHost) -> None:
        self.name = name
        self.host = host
        self.settings = host.settings
        self.checkout = host.settings.checkout(name)
        self._last: asyncio.Task[None] | None = None  # the chain's last step
        self._watch: ProjectWatch | None = None  # health and memory limit of its process
        self.rollout = RolloutKeeper(self)  # the last good commit, the bad one, the trial

    # the chain --------------------------------------------------------------------------------
    def busy(self) -> bool:
        """True while a step of this project runs or waits for its turn."""
        return self._last is not None and not self._last.done()

    def converge(self, local: Local) -> None:
        """Start the step that brings `local` closer to what the manager wants, if any."""
        if self.host.leaving or self.busy():
            return  # the chain's last step converges again when it ends
        if local.desired == "running" and not local.active and not local.lease_stopped:
            if local.status is ProjectStatus.FAILED and self.host.clock() < local.retry_at:
                return
            self._spawn(local, self._bring_up)
        elif local.desired == "stopped" and local.active:
            self._spawn(local, self._stop)
        elif local.desired == "stopped" and local.status not in (
            ProjectStatus.STOPPED,
            ProjectStatus.FAILED,
        ):
            self.set_status(local, ProjectStatus.STOPPED)

    def stop(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._stop)

    def restart(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._restart)

    def retire(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._retire)

    def remove(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._remove)

    def sync(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._sync)

    def roll_back(self, local: Local) -> asyncio.Task[None]:
        return self._spawn(local, self._roll_back)

    async def stop_now(self, local: Local) -> None:
        """Stop `local` outside the chain: the agent leaving, once every step has ended."""
        await self._stop(local)

    def _spawn(self, local: Local, step: Step) -> asyncio.Task[None]:
        """Run `step` for `local` once every earlier step of the same project has ended."""
        previous = self._last

        async def run() -> None:
            if previous is not None and not previous.done():
                # wait(), not await: the earlier step's failure is its own; our cancel is ours.
                await asyncio.wait([previous])
            try:
                await step(local)
            except Exception as exc:
                self._step_failed(local, step.__name__, exc)
            self.host.report_soon()
            if self._last is asyncio.current_task():
                self._last = None
                # The project's current Local may be a successor (a new epoch, a return after
                # a refusal): the wish may have changed while this step ran.
                current = self.host.current(self.name)
                if current is not None:
                    self.converge(current)
                else:
                    self.host.runner_idle(self)

        task = asyncio.create_task(run(), name=f"{step.__name__} {self.name}")
        self._last = task
        self.host.steps[task] = step.__name__

        def ended(task: asyncio.Task[None]) -> None:
            self.host.steps.pop(task, None)
            if self._last is task:
                self._last = None  # cancelled before its end

        task.add_done_callback(ended)
        return task

    # status and failures ----------------------------------------------------------------------
    def _step_failed(self, local: Local, step: str, exc: Exception) -> None:
        """A step raised: the project is failed with the reason, retried after a backoff."""
        reason = f"{step.lstrip('_').replace('_', ' ')} failed: {_describe_error(exc)}"
        # An OSError is the machine's (a full disk, a permission): one line. Anything else is
        # a bug of ours, worth its traceback.
        log.error("%s: %s", local.name, reason, exc_info=None if isinstance(exc, OSError) else exc)
        delay = restart_delay(STEP_RETRY, local.step_failures)
        local.step_failures += 1
        if local.active:
            # Its process runs on (or is being restarted): calling it failed would be untrue.
            local.reason = reason
            self._retry_later(local, delay)
        else:
            self._fail(local, reason, retry_in=delay)

    def _fail(self, local: Local, reason: str, retry_in: float) -> None:
        log.warning("%s: %s", local.name, reason)
        self.set_status(local, ProjectStatus.FAILED, reason)
        self._retry_later(local, retry_in)

    def _retry_later(self, local: Local, delay: float) -> None:
        local.retry_at = self.host.clock() + delay
        if delay == NEVER:
            return

        def retry() -> None:
            if self._current(local):
                self.host.converge(local)

        asyncio.get_running_loop().call_later(delay, retry)

    def set_status(self, local: Local, status: ProjectStatus, reason: str | None = None) -> None:
        """The one way a project's status changes here: through the table in states.py.

        Running after a rollback shows as rolled-back."""
        status, reason = self.rollout.shown(status, reason)
        check_project_transition(local.name, local.status, status)
        local.status = status
        if reason is not None:
            local.reason = reason
        self.host.report_soon()

    def _process_changed(self, local: Local) -> None:
        """The supervisor's status changed: mirror it, and give up after a crash loop."""
        process = local.process
        if process is not None and process.status != local.status:
            if process.status is ProjectStatus.FAILED:
                reason = self.rollout.crash_looped(local, process.reason)
                if reason is not None:  # None: a new commit rolled back
                    self._fail(local, reason, retry_in=NEVER)
            else:
                keep = process.status is not ProjectStatus.STARTING
                self.set_status(local, process.status, None if keep else "")
        if self._watch is not None and self._watch.process is process:
            self._watch.changed()
        self.host.report_soon()

    def _current(self, local: Local) -> bool:
        """True while `local` is what this node holds for its project (not a replaced epoch)."""
        return self.host.current(local.name) is local

    def _may_run(self, local: Local) -> bool:
        """Whether a step may start `local`'s process now: checked right before every start,
        since the wish can change while a step clones or waits its turn."""
        return (
            self._current(local)
            and local.desired == "running"
            and not local.lease_stopped
            and not self.host.leaving
        )

    # the steps --------------------------------------------------------------------------------
    async def _bring_up(self, local: Local) -> None:
        self._end_watch()  # of a process that is not active any more (or was replaced)
        if not self._current(local):
            return  # replaced by a new epoch while it waited: its variables are not ours
        checkout = self.checkout
        if not git_sync.is_checkout(checkout):
            self.set_status(local, ProjectStatus.CLONING, "")
            if checkout.exists():
                await asyncio.to_thread(shutil.rmtree, checkout)
            try:
                local.commit = await asyncio.to_thread(
                    git_sync.clone, local.url, local.ref, checkout
                )
            except git_sync.GitError as exc:
                self._fail(local, f"clone failed: {exc}", retry_in=CLONE_RETRY)
                return
        elif (
            local.started_with is not None and local.started_with[1] != local.ref
        ) or await asyncio.to_thread(git_sync.origin_url, checkout) != local.url:
            await self._follow(local)  # its URL or ref was changed in place
        else:
            local.commit = await asyncio.to_thread(git_sync.head_commit, checkout)
        await self.rollout.before_start(local)  # a bad commit is not run again
        local.disk_at = -1e9  # measure the checkout in the next report, not a minute later
        if self.host.epochs.get(local.name) != local.epoch:
            # Starting under a new epoch: the manager's copy of the variables is the truth.
            variables.save(local.manager_variables, checkout / variables.FILE_NAME)
            local.variables = dict(local.manager_variables)
            self.host.epochs.set(local.name, local.epoch)
        elif not local.variables:
            local.variables = dict(local.manager_variables)
        try:
            command = runcommand.resolve(checkout, local.command)
        except runcommand.NoRunCommand as exc:
            self._fail(local, str(exc), retry_in=NEVER)
            return
        if not self._may_run(local):
            self.set_status(local, ProjectStatus.STOPPED)
            return
        if local.sink is None:
            local.sink = LogSink(self.settings.logs_dir / f"{local.name}.log")
        local.started_with = (local.url, local.ref, local.command, dict(local.env))
        local.process = ProjectProcess(
            local.name,
            command,
            checkout,
            self._environment(local),
            local.sink,
            self.settings.records_dir,
            policy=self.settings.backoff,
            on_change=functools.partial(self._process_changed, local),
            grace=self.settings.grace,
        )
        restart = functools.partial(self._restart_for, local)
        self._watch = ProjectWatch(local, local.process, self.settings, restart)
        self.set_status(local, ProjectStatus.STARTING, "")
        try:
            await local.process.start()
        except OSError as exc:
            self._fail(local, f"cannot start {command!r}: {exc}", retry_in=CLONE_RETRY)
            return
        local.step_failures = 0
        self.rollout.started(local)

    def _environment(self, local: Local) -> dict[str, str]:
        env = dict(os.environ)
        for key in ("SYNCOPATE_PASSWORD", "SYNCOPATE_TOKEN"):
            env.pop(key, None)
        # The project's own variables go on top of the agent's, under the SYNCOPATE_* ones.
        env.update(local.env)
        env.update(
            {
                "SYNCOPATE_PROJECT": local.name,
                "SYNCOPATE_NODE": self.host.name,
                "SYNCOPATE_VARIABLES": str((self.checkout / variables.FILE_NAME).resolve()),
                "SYNCOPATE_MANAGER": self.settings.manager,
                # The agent's own interpreter, which can `import syncopate.variables`; the
                # python3 on PATH may be the system's (with the board's GPIO libraries).
                "SYNCOPATE_PYTHON": sys.executable,
                "PYTHONUNBUFFERED": "1",
                # Inherited by everything the project starts: a later agent finds and ends
                # them even if this one dies before it recorded the start.
                MARKER: marker_value(self.settings.data_dir),
            }
        )
        return env

    async def _stop(self, local: Local) -> None:
        if local.process is not None:
            await local.process.stop()
            self._end_watch()
        if local.status is not ProjectStatus.FAILED or local.desired == "stopped":
            self.set_status(local, ProjectStatus.STOPPED)

    async def _restart(self, local: Local) -> None:
        if not self._may_run(local):
            return
        started = local.started_with
        if local.process is not None and started is not None and started != local.wanted:
            # Changed in place (`set`): the old process ends, a new one gets the new values.
            await local.process.stop()
            local.process = None
            if started[:2] != (local.url, local.ref):
                await self._follow(local)
        if local.process is None:
            await self._bring_up(local)
        else:
            await self.rollout.before_start(local)
            await local.process.restart()
            self.rollout.started(local)

    async def _roll_back(self, local: Local) -> None:
        """Run the last good commit again: a new one failed within its grace."""
        await self.rollout.check_out_good(local)
        await self._restart(local)

    async def _follow(self, local: Local) -> None:
        """Point the checkout at the project's URL and ref, should `set` have changed them."""
        try:
            local.commit, _ = await asyncio.to_thread(
                git_sync.update, self.checkout, local.ref, url=local.url, retarget=True
            )
        except (git_sync.GitError, OSError) as exc:
            log.warning("%s: fetch failed: %s", local.name, exc)

    async def _retire(self, local: Local) -> None:
        """Stop a project this node no longer runs, and close its log."""
        await self._stop(local)
        if local.sink is not None:
            local.sink.close()

    async def _remove(self, local: Local) -> None:
        await self._retire(local)
        if self.host.current(local.name) is None:
            await asyncio.to_thread(shutil.rmtree, self.checkout, True)
            self.rollout.forget()
        self.host.epochs.forget(local.name)

    async def _sync(self, local: Local) -> None:
        if not self._current(local):
            return
        started = local.started_with
        if started is not None and started[:2] != (local.url, local.ref):
            return  # `set` changed them: its restart step follows them, once

        try:
            commit, changed = await asyncio.to_thread(
                git_sync.update, self.checkout, local.ref, avoid=self.rollout.avoid
            )
        except (git_sync.GitError, OSError) as exc:
            log.warning("%s: fetch failed: %s", local.name, exc)
            return
        local.commit = commit
        if not changed:
            return
        log.info("%s: new commit %s", local.name, commit[:12])
        local.forgive()  # a new commit is tried even after a crash loop
        if local.process is not None and local.process.status != ProjectStatus.STOPPED:
            await self._restart(local)
        # Otherwise the chain's end converges: a failed project is brought up on the new
        # commit; a stopped one starts on it when it is started.

    # health checks and the memory limit (watch.py) ------------------------------------------
    def _end_watch(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _restart_for(self, local: Local, reason: str, unhealthy: str | None) -> None:
        """The watch asks for a restart: a failed health check (`unhealthy` says why; a new
        commit on trial is rolled back instead) or memory over the limit; through the normal
        restart step."""
        if not self._current(local) or not local.active:
            return
        log.warning("%s: %s", local.name, reason)
        if unhealthy is not None and project_transition_allowed(
            local.status, ProjectStatus.UNHEALTHY
        ):
            self.set_status(local, ProjectStatus.UNHEALTHY, reason)
            if self.rollout.unhealthy(local, unhealthy):
                return  # its rollback step restarts it, on the last good commit
        else:
            self.set_status(local, local.status, reason)
        self.restart(local)

    # the report -------------------------------------------------------------------------------
    async def measure_disk(self, local: Local) -> None:
        """Measure the checkout, at most once per DISK_PROBE_EVERY."""
        now = self.host.clock()
        if now - local.disk_at > DISK_PROBE_EVERY:
            # Off the event loop: walking a checkout on an SD card can take a while.
            local.disk_at = now
            local.disk_mb = await asyncio.to_thread(probes.dir_size_mb, self.checkout)

    def build_report(self, local: Local) -> dict[str, Any]:
        """The /node-update body for one project (without name and token)."""
        started = self.host.epochs.get(local.name) == local.epoch
        return report.build(local, self.checkout, started) | self.rollout.report()


def _describe_error(exc: Exception) -> str:
    """An exception as one line a person can act on (an OSError names its cause and path)."""
    if isinstance(exc, OSError) and exc.strerror:
        # os.replace(tmp, path) names both; the second is the one a person knows.
        path = exc.filename2 or exc.filename
        where = f": {path}" if path else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
